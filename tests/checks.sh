# Sourced by e2e scripts (e2e_robust, e2e_usage, e2e_cli, e2e_train,
# e2e_bigr, e2e_elm, e2e_ctnet). e2e_init NAME "$@" sets BIN (the binary, absolute), REPO,
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
# expect CODE CMD...: run CMD (stdout to $T/out, stderr to $T/err), check its exit code
expect() {
    local want=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "exit $got (want $want): $*"; sed 's/^/  | /' "$T/err" >&2; fi
}
# has / hasnt FILE TEXT: FILE contains TEXT / does not (else its lines are shown)
has() { if grep -q -- "$2" "$1"; then ok; else bad "$1 lacks '$2'"; sed 's/^/  | /' "$1" >&2; fi; }
hasnt() { if grep -q -- "$2" "$1"; then bad "$1 has '$2'"; sed 's/^/  | /' "$1" >&2; else ok; fi; }
# lines FILE N: FILE has N lines
lines() {
    local n; n=$(wc -l <"$1")
    if [ "$n" -eq "$2" ]; then ok; else bad "$1 has $n lines, want $2"; sed 's/^/  | /' "$1" >&2; fi
}
png() { if [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; then ok; else bad "$1 is not a PNG"; fi; }
have_fmnist() { [ -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; }
e2e_done() {
    echo "$E2E_NAME: $passes passed, $fails failed"
    [ "$fails" -eq 0 ]
}
