#!/usr/bin/env bash
# Strata local cluster launcher: N `strata-server run` nodes on 127.0.0.1.
#
#   deploy/local-cluster.sh up N      start nodes 1..N (roles broker,controller, all voters), wait ready
#   deploy/local-cluster.sh down      SIGTERM every node, SIGKILL what is left after ~15 s
#   deploy/local-cluster.sh kill I    SIGKILL node I (a crash)
#   deploy/local-cluster.sh start I   start node I again (same flags and data), wait ready
#   deploy/local-cluster.sh stop I    SIGTERM node I (controlled shutdown) and wait for it to exit
#   deploy/local-cluster.sh pause I   SIGSTOP node I          resume I: SIGCONT node I
#   deploy/local-cluster.sh status    pid, alive and ready of each node
#
# Node i listens on 127.0.0.1: BASE+10(i-1) (clients), +1 (controller Raft),
# +2 (HTTP: /healthz, /readyz, /metrics), +3 (Kafka protocol).
#
# Environment:
#   STRATA_CLUSTER_DIR    state and data (default ./strata-cluster): nodeI/ data dirs,
#                         nodeI.log, nodeI.pid and cluster.env (N, port base, binaries)
#   STRATA_BASE_PORT      port base for `up` (default 9700)
#   STRATA_BIN_DIR        directory holding strata-server (default this workspace's
#                         target/release, built with `cargo build --release --bins`
#                         when missing)
#   STRATA_READY_TIMEOUT  seconds to wait for /readyz (default 60)
#   STRATA_STOP_TIMEOUT   seconds to wait for a SIGTERMed node to exit (default 15)
#   STRATA_SECURE=1       (for `up`) a secure cluster: a CA and certificates made
#                         with openssl under $STRATA_CLUSTER_DIR/tls (ca.pem,
#                         nodeI.pem naming strata-node-I, admin.pem for the CLI),
#                         TLS on every listener, SCRAM-SHA-256/512 on the Kafka
#                         listener, ACLs enforced (--authorizer on), and a super
#                         user `admin` whose password is in
#                         $STRATA_CLUSTER_DIR/admin.password (admin.pem names
#                         the same principal, User:admin). The choice is kept
#                         in cluster.env for `start`.
# Every other variable (STRATA_CONFIG, STRATA_RACK, RUST_LOG, ...) is inherited
# by the servers; the flags set here take precedence over their STRATA_* twins.
#
# Only PIDs from this cluster's own pid files are ever signalled, and only
# while /proc/PID/cmdline still shows strata-server with this node's data dir.
set -euo pipefail

PROG=${0##*/}
USAGE="usage: $PROG up N | down | kill I | start I | stop I | pause I | resume I | status"

die() {
    echo "$PROG: $*" >&2
    exit 1
}

usage_error() {
    echo "$PROG: $* ($USAGE)" >&2
    exit 2
}

CLUSTER_DIR=${STRATA_CLUSTER_DIR:-./strata-cluster}
READY_TIMEOUT=${STRATA_READY_TIMEOUT:-60}
STOP_TIMEOUT=${STRATA_STOP_TIMEOUT:-15}
ENV_FILE=$CLUSTER_DIR/cluster.env

# Set from cluster.env (or by `up`).
N=0
BASE_PORT=0
BIN_DIR=
SECURE=0

is_uint() {
    [[ $1 =~ ^[0-9]+$ ]]
}

abs_path() {
    (cd "$1" && pwd -P)
}

client_port() { echo $((BASE_PORT + 10 * ($1 - 1))); }
controller_port() { echo $((BASE_PORT + 10 * ($1 - 1) + 1)); }
http_port() { echo $((BASE_PORT + 10 * ($1 - 1) + 2)); }
kafka_port() { echo $((BASE_PORT + 10 * ($1 - 1) + 3)); }
data_dir() { echo "$CLUSTER_DIR/node$1"; }
log_file() { echo "$CLUSTER_DIR/node$1.log"; }
pid_file() { echo "$CLUSTER_DIR/node$1.pid"; }

load_env() {
    [[ -f $ENV_FILE ]] || die "no cluster in $CLUSTER_DIR (start one with: $PROG up N)"
    CLUSTER_DIR=$(abs_path "$CLUSTER_DIR")
    ENV_FILE=$CLUSTER_DIR/cluster.env
    local key value
    while IFS='=' read -r key value; do
        case $key in
            N) N=$value ;;
            BASE_PORT) BASE_PORT=$value ;;
            BIN_DIR) BIN_DIR=$value ;;
            SECURE) SECURE=$value ;;
        esac
    done <"$ENV_FILE"
    if ! is_uint "$N" || ((N < 1)); then die "$ENV_FILE: bad N '$N'"; fi
    is_uint "$BASE_PORT" || die "$ENV_FILE: bad BASE_PORT '$BASE_PORT'"
    [[ -x $BIN_DIR/strata-server ]] || die "$ENV_FILE: no strata-server in BIN_DIR '$BIN_DIR'"
}

# Validates a node number against the cluster size.
check_node() {
    local i=$1
    is_uint "$i" || usage_error "node must be a number, got '$i'"
    i=$((10#$i))
    ((i >= 1 && i <= N)) || die "node $i out of range: this cluster has nodes 1..$N"
    echo "$i"
}

# The binaries: $STRATA_BIN_DIR, else the workspace's target/release (built
# there if missing).
find_bin_dir() {
    if [[ -n ${STRATA_BIN_DIR:-} ]]; then
        [[ -x $STRATA_BIN_DIR/strata-server ]] || die "STRATA_BIN_DIR=$STRATA_BIN_DIR has no strata-server"
        abs_path "$STRATA_BIN_DIR"
        return
    fi
    local root release
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
    release=${CARGO_TARGET_DIR:-$root/target}/release
    if [[ ! -x $release/strata-server ]]; then
        echo "$PROG: $release/strata-server not found; building it (cargo build --release --bins)" >&2
        (cd "$root" && cargo build --release --bins >&2) || die "cargo build --release --bins failed"
    fi
    abs_path "$release"
}

# Process state letter from /proc/PID/stat (R, S, D, T, Z, ...), or empty.
proc_state() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    echo "${stat%% *}"
}

# True when PID is a live (not zombie) strata-server running node I's data dir.
owns_pid() {
    local pid=$1 i=$2 state arg prev= argc=0 dir_ok=0
    is_uint "$pid" || return 1
    state=$(proc_state "$pid")
    [[ -n $state && $state != Z && $state != X ]] || return 1
    while IFS= read -r -d '' arg; do
        if ((argc == 0)); then
            [[ ${arg##*/} == strata-server ]] || return 1
        elif [[ $prev == --data-dir && $arg == "$(data_dir "$i")" ]]; then
            dir_ok=1
        fi
        prev=$arg
        argc=$((argc + 1))
    done 2>/dev/null <"/proc/$pid/cmdline" || return 1
    ((dir_ok))
}

# The PID of node I if it is running (per its pid file), else empty.
running_pid() {
    local pid
    pid=$(cat "$(pid_file "$1")" 2>/dev/null) || return 0
    if owns_pid "$pid" "$1"; then
        echo "$pid"
    fi
}

# True when node I's /readyz answers 200 (curl, else bash's /dev/tcp).
is_ready() {
    local port code=
    port=$(http_port "$1")
    if ((SECURE)); then
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' --cacert "$CLUSTER_DIR/tls/ca.pem" "https://127.0.0.1:$port/readyz" 2>/dev/null) || true
    elif command -v curl >/dev/null; then
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/readyz" 2>/dev/null) || true
    else
        # shellcheck disable=SC2016 # expanded by the inner bash
        code=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 && read -r _ c _ <&3 && echo "$c"' _ "$port" 2>/dev/null) || true
    fi
    [[ $code == 200 ]]
}

voters() {
    local i out=
    for ((i = 1; i <= N; i++)); do
        out+="${out:+,}$i@127.0.0.1:$(controller_port "$i")"
    done
    echo "$out"
}

spawn_node() {
    local i=$1 pid
    mkdir -p "$(data_dir "$i")"
    {
        echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) $PROG: starting node $i"
    } >>"$(log_file "$i")"
    # setsid: the node outlives this script and the terminal that ran it (a
    # background job of a script is no process-group leader, so setsid execs
    # in place and $! is the server's PID).
    local detach=()
    if command -v setsid >/dev/null; then detach=(setsid); fi
    local secure=()
    if ((SECURE)); then
        local tls=$CLUSTER_DIR/tls
        secure=(--tls-cert-file "$tls/node$i.pem" --tls-key-file "$tls/node$i-key.pem" --tls-ca-file "$tls/ca.pem"
            --sasl-mechanisms SCRAM-SHA-256,SCRAM-SHA-512 --authorizer on --super-users User:admin)
    fi
    "${detach[@]}" "$BIN_DIR/strata-server" run \
        "${secure[@]}" \
        --node-id "$i" \
        --roles broker,controller \
        --data-dir "$(data_dir "$i")" \
        --listen "127.0.0.1:$(client_port "$i")" \
        --controller-listen "127.0.0.1:$(controller_port "$i")" \
        --http-listen "127.0.0.1:$(http_port "$i")" \
        --kafka-listen "127.0.0.1:$(kafka_port "$i")" \
        --controller-voters "$(voters)" \
        </dev/null >>"$(log_file "$i")" 2>&1 &
    pid=$!
    echo "$pid" >"$(pid_file "$i")"
}

# Waits until every node in "$@" is ready; fails with the log tail of the
# first node that exits or is still not ready at the deadline.
wait_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT)) i pid state pending
    while :; do
        pending=()
        for i in "$@"; do
            pid=$(cat "$(pid_file "$i")" 2>/dev/null || true)
            state=$(proc_state "$pid")
            if [[ -z $state || $state == Z ]]; then
                echo "$PROG: node $i (pid $pid) exited while starting; last lines of $(log_file "$i"):" >&2
                tail -n 30 "$(log_file "$i")" >&2 || true
                echo "$PROG: nodes that did start keep running; '$PROG down' stops them" >&2
                exit 1
            fi
            is_ready "$i" || pending+=("$i")
        done
        ((${#pending[@]} == 0)) && return 0
        if ((SECONDS >= deadline)); then
            i=${pending[0]}
            echo "$PROG: node $i not ready after ${READY_TIMEOUT}s (http://127.0.0.1:$(http_port "$i")/readyz); last lines of $(log_file "$i"):" >&2
            tail -n 30 "$(log_file "$i")" >&2 || true
            echo "$PROG: the nodes keep running; '$PROG down' stops them" >&2
            exit 1
        fi
        sleep 0.2
    done
}

# Waits until none of the "$@" (node:pid pairs) is alive or TIMEOUT seconds
# passed; leaves the pairs still alive in LEFT.
LEFT=()
wait_gone() {
    local timeout=$1 deadline pair
    shift
    deadline=$((SECONDS + timeout))
    while :; do
        LEFT=()
        for pair in "$@"; do
            if owns_pid "${pair#*:}" "${pair%%:*}"; then LEFT+=("$pair"); fi
        done
        if ((${#LEFT[@]} == 0 || SECONDS >= deadline)); then return 0; fi
        sleep 0.1
    done
}

cmd_up() {
    (($# == 1)) || usage_error "up takes the number of nodes"
    is_uint "$1" || usage_error "up: N must be a number, got '$1'"
    local n=$((10#$1)) base=${STRATA_BASE_PORT:-9700} i pid
    ((n >= 1 && n <= 100)) || die "up: N must be between 1 and 100, got $n"
    is_uint "$base" || die "STRATA_BASE_PORT must be a number, got '$base'"
    base=$((10#$base))
    ((base >= 1 && base + 10 * (n - 1) + 2 <= 65535)) || die "STRATA_BASE_PORT $base leaves no room for $n nodes"
    mkdir -p "$CLUSTER_DIR"
    CLUSTER_DIR=$(abs_path "$CLUSTER_DIR")
    ENV_FILE=$CLUSTER_DIR/cluster.env
    if [[ -f $ENV_FILE ]]; then
        load_env
        for ((i = 1; i <= N; i++)); do
            pid=$(running_pid "$i")
            [[ -z $pid ]] || die "node $i is already running (pid $pid); run '$PROG down' first"
        done
        ((N == n)) || die "$CLUSTER_DIR holds a $N-node cluster; use 'up $N' or another STRATA_CLUSTER_DIR"
    fi
    N=$n
    BASE_PORT=$base
    BIN_DIR=$(find_bin_dir)
    SECURE=0
    if [[ ${STRATA_SECURE:-0} == 1 ]]; then
        SECURE=1
        make_certificates
    fi
    printf 'N=%s\nBASE_PORT=%s\nBIN_DIR=%s\nSECURE=%s\n' "$N" "$BASE_PORT" "$BIN_DIR" "$SECURE" >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    for ((i = 1; i <= N; i++)); do
        spawn_node "$i"
    done
    local all=()
    for ((i = 1; i <= N; i++)); do all+=("$i"); done
    wait_ready "${all[@]}"
    for ((i = 1; i <= N; i++)); do
        echo "node $i ready: pid $(cat "$(pid_file "$i")"), client 127.0.0.1:$(client_port "$i"), http 127.0.0.1:$(http_port "$i")"
    done
    local bootstrap=
    for ((i = 1; i <= N; i++)); do bootstrap+="${bootstrap:+,}127.0.0.1:$(client_port "$i")"; done
    echo "bootstrap: $bootstrap"
    if ((SECURE)); then
        local tls=$CLUSTER_DIR/tls
        local cli=("$BIN_DIR/strata" --bootstrap "$bootstrap" --ca-file "$tls/ca.pem" --cert-file "$tls/admin.pem" --key-file "$tls/admin-key.pem")
        [[ -x $BIN_DIR/strata ]] || die "$BIN_DIR/strata not found (needed to create the admin user)"
        "${cli[@]}" user create admin <"$CLUSTER_DIR/admin.password" >/dev/null || die "creating the admin user failed"
        echo "secure: TLS everywhere (CA $tls/ca.pem), SCRAM, ACLs enforced; super user admin, password in $CLUSTER_DIR/admin.password"
        echo "cli: strata --bootstrap $bootstrap --ca-file $tls/ca.pem --cert-file $tls/admin.pem --key-file $tls/admin-key.pem ..."
    fi
}

# A CA, a certificate per node (strata-node-I, localhost, 127.0.0.1) and one
# for the CLI (admin), with openssl; and the admin user's password. Kept
# across `up`s of the same directory.
make_certificates() {
    local tls=$CLUSTER_DIR/tls i
    command -v openssl >/dev/null || die "STRATA_SECURE=1 needs openssl (apt-get install openssl)"
    command -v curl >/dev/null || die "STRATA_SECURE=1 needs curl for the HTTPS readiness checks (apt-get install curl)"
    mkdir -p "$tls"
    if [[ ! -f $tls/ca.pem ]]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj "/CN=strata local cluster CA" \
            -keyout "$tls/ca-key.pem" -out "$tls/ca.pem" 2>/dev/null || die "openssl could not make the CA"
    fi
    issue() { # name sans...
        local name=$1 sans=
        shift
        [[ -f $tls/$name.pem ]] && return 0
        for s in "$@"; do sans+="${sans:+,}$s"; done
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${1#DNS:}" \
            -keyout "$tls/$name-key.pem" -out "$tls/$name.csr" 2>/dev/null || die "openssl could not make a key for $name"
        printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$sans" >"$tls/$name.ext"
        openssl x509 -req -in "$tls/$name.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" -CAcreateserial -days 365 \
            -extfile "$tls/$name.ext" -out "$tls/$name.pem" 2>/dev/null || die "openssl could not sign $name"
        rm -f "$tls/$name.csr" "$tls/$name.ext"
        chmod 600 "$tls/$name-key.pem"
    }
    for ((i = 1; i <= N; i++)); do issue "node$i" "DNS:strata-node-$i" DNS:localhost IP:127.0.0.1; done
    issue admin DNS:admin
    if [[ ! -f $CLUSTER_DIR/admin.password ]]; then
        (umask 077 && openssl rand -hex 16 >"$CLUSTER_DIR/admin.password")
    fi
}

cmd_down() {
    (($# == 0)) || usage_error "down takes no arguments"
    load_env
    local i pid pairs=() pair
    for ((i = 1; i <= N; i++)); do
        pid=$(running_pid "$i")
        if [[ -n $pid ]]; then
            kill -TERM "$pid" 2>/dev/null || true
            kill -CONT "$pid" 2>/dev/null || true # a paused node must run to see SIGTERM
            pairs+=("$i:$pid")
        fi
    done
    if ((${#pairs[@]} > 0)); then
        wait_gone "$STOP_TIMEOUT" "${pairs[@]}"
        if ((${#LEFT[@]} > 0)); then
            for pair in "${LEFT[@]}"; do
                echo "$PROG: node ${pair%%:*} (pid ${pair#*:}) still running after ${STOP_TIMEOUT}s; sending SIGKILL" >&2
                if owns_pid "${pair#*:}" "${pair%%:*}"; then kill -KILL "${pair#*:}" 2>/dev/null || true; fi
            done
            wait_gone 5 "${pairs[@]}"
        fi
    fi
    for ((i = 1; i <= N; i++)); do rm -f "$(pid_file "$i")"; done
    echo "stopped ${#pairs[@]} node(s); data kept in $CLUSTER_DIR"
}

cmd_kill() {
    local i pid
    i=$(check_node "$1")
    pid=$(running_pid "$i")
    [[ -n $pid ]] || die "node $i is not running"
    kill -KILL "$pid"
    wait_gone 5 "$i:$pid"
    echo "node $i (pid $pid) killed"
}

cmd_start() {
    local i pid
    i=$(check_node "$1")
    pid=$(running_pid "$i")
    [[ -z $pid ]] || die "node $i is already running (pid $pid)"
    spawn_node "$i"
    wait_ready "$i"
    echo "node $i ready: pid $(cat "$(pid_file "$i")"), client 127.0.0.1:$(client_port "$i")"
}

cmd_stop() {
    local i pid
    i=$(check_node "$1")
    pid=$(running_pid "$i")
    [[ -n $pid ]] || die "node $i is not running"
    kill -TERM "$pid"
    kill -CONT "$pid" 2>/dev/null || true
    wait_gone "$STOP_TIMEOUT" "$i:$pid"
    if ((${#LEFT[@]} > 0)); then
        if owns_pid "$pid" "$i"; then kill -KILL "$pid" 2>/dev/null || true; fi
        rm -f "$(pid_file "$i")"
        die "node $i (pid $pid) did not exit within ${STOP_TIMEOUT}s of SIGTERM; killed it"
    fi
    rm -f "$(pid_file "$i")"
    echo "node $i (pid $pid) stopped"
}

cmd_pause() {
    local i pid
    i=$(check_node "$1")
    pid=$(running_pid "$i")
    [[ -n $pid ]] || die "node $i is not running"
    kill -STOP "$pid"
    echo "node $i (pid $pid) paused"
}

cmd_resume() {
    local i pid
    i=$(check_node "$1")
    pid=$(running_pid "$i")
    [[ -n $pid ]] || die "node $i is not running"
    kill -CONT "$pid"
    echo "node $i (pid $pid) resumed"
}

cmd_status() {
    (($# == 0)) || usage_error "status takes no arguments"
    load_env
    local i pid alive ready state
    for ((i = 1; i <= N; i++)); do
        pid=$(running_pid "$i")
        alive=no ready=no state=down
        if [[ -n $pid ]]; then
            alive=yes state=running
            [[ $(proc_state "$pid") == T ]] && state=paused
            is_ready "$i" && ready=yes
        fi
        echo "node $i: pid ${pid:--} alive $alive ready $ready state $state client 127.0.0.1:$(client_port "$i") http 127.0.0.1:$(http_port "$i")"
    done
}

main() {
    is_uint "$READY_TIMEOUT" || die "STRATA_READY_TIMEOUT must be a number of seconds, got '$READY_TIMEOUT'"
    is_uint "$STOP_TIMEOUT" || die "STRATA_STOP_TIMEOUT must be a number of seconds, got '$STOP_TIMEOUT'"
    (($# >= 1)) || usage_error "no command given"
    local cmd=$1
    shift
    case $cmd in
        up) cmd_up "$@" ;;
        down | status) "cmd_$cmd" "$@" ;;
        kill | start | stop | pause | resume)
            (($# == 1)) || usage_error "$cmd takes one node number"
            load_env
            "cmd_$cmd" "$1"
            ;;
        -h | --help | help) echo "$USAGE" ;;
        *) usage_error "unknown command '$cmd'" ;;
    esac
}

main "$@"
