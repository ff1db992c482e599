# Sourced by the scripts that start `tessera serve --port 0 ... >OUT &`.
# serve_wait OUT PID [TRIES]: prints the port the server announced in OUT
# ("port": N, written once it listens) and returns 0; returns 1 without
# output when PID exits first or TRIES x 0.1 s pass (default 600: a loaded
# machine may take a while to load every model).
serve_wait() {
    local out=$1 pid=$2 tries=${3:-600} port
    for _ in $(seq 1 "$tries"); do
        port=$(grep -o '"port": [0-9]*' "$out" 2>/dev/null | grep -o '[0-9]*$')
        if [ -n "$port" ]; then
            echo "$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
