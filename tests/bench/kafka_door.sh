#!/usr/bin/env bash
# The Kafka door against the gRPC door on one `strata-server dev` (release
# build): librdkafka (confluent-kafka) producing to and reading from the
# Kafka listener, Strata's own client (`strata bench`) over gRPC, the same
# records (1 KiB, one partition, acks=1), alternating, ROUNDS times. Prints
# each run as a JSON line with the server's CPU seconds, then the medians
# and the Kafka/gRPC ratios.
#
#   tests/bench/kafka_door.sh [RECORDS] [ROUNDS]
#
# Needs target/release (built if missing) and the tests' venv with
# confluent-kafka (target/venv-kafka-clients-2; `cargo test --test
# kafka_clients` creates it). Data under target/bench-data; the server is
# ended by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS=${1:-1000000}
ROUNDS=${2:-3}
PY=target/venv-kafka-clients-2/bin/python
[ -x "$PY" ] || { echo "error: $PY missing: run 'cargo test -p strata-tests --test kafka_clients' once" >&2; exit 2; }
[ -x target/release/strata-server ] || cargo build --release --locked --bins
BIN=target/release
DATA=$(mktemp -d "${STRATA_BENCH_DIR:-target}/kafka-door.XXXXXX")
PORT=$((21000 + (RANDOM % 400) * 10))
"$BIN/strata-server" dev --data-dir "$DATA/data" --listen 127.0.0.1:$PORT --controller-listen 127.0.0.1:$((PORT + 1)) \
  --http-listen 127.0.0.1:$((PORT + 2)) --kafka-listen 127.0.0.1:$((PORT + 3)) >"$DATA/server.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$((PORT + 2))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
hz=$(getconf CLK_TCK)
RESULTS=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  for door in kafka grpc; do
    topic="$door-$round"
    "$BIN/strata" --bootstrap 127.0.0.1:$PORT topic create "$topic" -p 1 -r 1 -c flush.policy=interval >/dev/null
    for op in produce consume; do
      s0=$(ticks)
      if [ $door = kafka ]; then
        if [ $op = produce ]; then out=$("$PY" tests/bench/kafka_door.py produce 127.0.0.1:$((PORT + 3)) "$topic" "$RECORDS" 1024)
        else out=$("$PY" tests/bench/kafka_door.py consume 127.0.0.1:$((PORT + 3)) "$topic" "$RECORDS"); fi
      else
        start=$(date +%s.%N)
        if [ $op = produce ]; then
          out=$(/usr/bin/time -f '%U %S' -o "$DATA/time" "$BIN/strata" --bootstrap 127.0.0.1:$PORT bench produce --topic "$topic" --records "$RECORDS" --record-size 1024 --acks 1 --json 2>/dev/null)
        else
          out=$(/usr/bin/time -f '%U %S' -o "$DATA/time" "$BIN/strata" --bootstrap 127.0.0.1:$PORT bench consume --topic "$topic" --json 2>/dev/null)
        fi
        cpu=$(awk '{print $1 + $2}' "$DATA/time")
        out=$(echo "$out" | python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d['client_cpu']=$cpu; print(json.dumps(d))")
      fi
      server=$(python3 -c "print(($(ticks) - $s0) / $hz)")
      echo "{\"door\":\"$door\",\"op\":\"$op\",\"round\":$round,\"server_cpu\":$server,\"result\":$out}" | tee -a "$RESULTS"
    done
  done
done
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for door in ("kafka", "grpc"):
    for op in ("produce", "consume"):
        rs = [r for r in rows if r["door"] == door and r["op"] == op]
        mb = statistics.median(r["result"]["mb_per_sec"] for r in rs)
        n = rs[0]["result"].get("records") or 1
        cli = statistics.median(r["result"]["client_cpu"] for r in rs) / n * 1e6
        srv = statistics.median(r["server_cpu"] for r in rs) / n * 1e6
        med[(door, op)] = mb
        print(f"{door:6} {op:8} {mb:8.1f} MB/s   client {cli:5.2f} CPU-s/M   server {srv:5.2f} CPU-s/M")
for op in ("produce", "consume"):
    print(f"{op}: Kafka door / gRPC door = {med[('kafka', op)] / med[('grpc', op)]:.2f}x")
PY
rm -f "$RESULTS"
