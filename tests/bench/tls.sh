#!/usr/bin/env bash
# TLS on against TLS off on one release `strata-server run` node each,
# the same run: `strata bench produce` (1 KiB records, acks=1), `strata
# bench consume` and `strata bench e2e`, alternating ROUNDS times; prints
# each result as JSON with the server's CPU seconds, then the medians and
# the TLS/plaintext ratios. Certificates come from openssl (Debian's) in a
# temporary directory; servers are ended by PID.
#
#   tests/bench/tls.sh [RECORDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS=${1:-500000}
ROUNDS=${2:-3}
[ -x target/release/strata-server ] || cargo build --release --locked --bins
BIN=target/release
DIR=$(mktemp -d "${STRATA_BENCH_DIR:-target}/tls-bench.XXXXXX")
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$DIR"' EXIT
# A CA and a node certificate naming strata-node-1, localhost and 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$DIR/ca-key.pem" -out "$DIR/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=strata-node-1 \
  -keyout "$DIR/node-key.pem" -out "$DIR/node.csr" 2>/dev/null
printf 'subjectAltName=DNS:strata-node-1,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$DIR/ext"
openssl x509 -req -in "$DIR/node.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca-key.pem" -CAcreateserial -days 2 \
  -extfile "$DIR/ext" -out "$DIR/node.pem" 2>/dev/null
start() { # name port-base [tls]
  local env=()
  if [ "${3:-}" = tls ]; then
    env=(STRATA_TLS_CERT_FILE="$DIR/node.pem" STRATA_TLS_KEY_FILE="$DIR/node-key.pem" STRATA_TLS_CA_FILE="$DIR/ca.pem")
  fi
  env "${env[@]}" "$BIN/strata-server" run --node-id 1 --data-dir "$DIR/$1" --listen 127.0.0.1:$2 \
    --controller-listen 127.0.0.1:$(($2 + 1)) --http-listen 127.0.0.1:$(($2 + 2)) >"$DIR/$1.log" 2>&1 &
  PIDS+=($!)
}
BASE=$((22000 + (RANDOM % 300) * 10))
start plain $BASE
start tls $((BASE + 5)) tls
sleep 3
SPLAIN=${PIDS[0]}
STLS=${PIDS[1]}
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
RESULTS=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  for mode in plain tls; do
    if [ $mode = tls ]; then PID=$STLS; ARGS=(--bootstrap 127.0.0.1:$((BASE + 5)) --ca-file "$DIR/ca.pem")
    else PID=$SPLAIN; ARGS=(--bootstrap 127.0.0.1:$BASE); fi
    topic="b$round"
    "$BIN/strata" "${ARGS[@]}" topic create "$topic" -p 1 -r 1 -c flush.policy=interval >/dev/null
    for op in produce consume e2e; do
      case $op in
        produce) extra=(--records "$RECORDS" --record-size 1024 --acks 1) ;;
        consume) extra=() ;;
        e2e) extra=(--records 20000 --rate 5000 --record-size 1024 --acks 1) ;;
      esac
      s0=$(ticks "$PID")
      out=$("$BIN/strata" "${ARGS[@]}" bench $op --topic "$topic" "${extra[@]}" --json 2>/dev/null | tail -1)
      server=$(python3 -c "print(($(ticks "$PID") - $s0) / $hz)")
      echo "{\"mode\":\"$mode\",\"op\":\"$op\",\"round\":$round,\"server_cpu\":$server,\"result\":$out}" | tee -a "$RESULTS"
    done
  done
done
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for mode in ("plain", "tls"):
    for op in ("produce", "consume", "e2e"):
        rs = [r for r in rows if r["mode"] == mode and r["op"] == op]
        if op == "e2e":
            p = {k: statistics.median(r["result"][k] for r in rs) for k in ("p50_ms", "p99_ms")}
            med[(mode, op)] = p["p99_ms"]
            print(f"{mode:5} e2e      p50 {p['p50_ms']:.2f} ms  p99 {p['p99_ms']:.2f} ms")
        else:
            mb = statistics.median(r["result"]["mb_per_sec"] for r in rs)
            srv = statistics.median(r["server_cpu"] for r in rs)
            med[(mode, op)] = mb
            print(f"{mode:5} {op:8} {mb:8.1f} MB/s  server CPU {srv:.2f} s")
for op in ("produce", "consume"):
    print(f"{op}: TLS / plaintext = {med[('tls', op)] / med[('plain', op)]:.2f}x")
print(f"e2e p99: TLS / plaintext = {med[('tls', 'e2e')] / med[('plain', 'e2e')]:.2f}x")
PY
rm -f "$RESULTS"
