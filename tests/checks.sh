# Sourced by the e2e scripts of the rules every verb shares (e2e_robust.sh,
# e2e_usage.sh). e2e_init NAME "$@" sets BIN (the binary, absolute), REPO,
# T (a temporary directory, removed on exit), the threads, and no
# TESSERA_MODELS; then the counters and checks below. e2e_done prints the
# tally and returns non-zero on any failure.
e2e_init() {
    local name=$1
    shift
    BIN=${1:?usage: $name.sh path/to/tessera}
    BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
    REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    E2E_NAME=$name
    T=$(mktemp -d "/tmp/tsr_$name.XXXXXX")
    trap 'rm -rf "$T"' EXIT
    export TESSERA_THREADS=${TESSERA_THREADS:-2}
    unset TESSERA_MODELS
    fails=0 passes=0
}
ok() { passes=$((passes + 1)); }
bad() { fails=$((fails + 1)); echo "FAIL: $*" >&2; }
# has FILE TEXT: FILE contains TEXT (else its lines are shown)
has() { if grep -q -- "$2" "$1"; then ok; else bad "$1 lacks '$2'"; sed 's/^/  | /' "$1" >&2; fi; }
have_fmnist() { [ -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; }
e2e_done() {
    echo "$E2E_NAME: $passes passed, $fails failed"
    [ "$fails" -eq 0 ]
}
