#!/usr/bin/env bash
# The Kafka door against the gRPC door on one `strata-server dev` (release
# build): a librdkafka client producing to and reading from the Kafka
# listener, Strata's own client (`strata bench`) over gRPC, the same
# records (1 KiB, one partition, acks=1, 5 ms linger, 1 MiB batches; the
# consumer's fetch wait is 5 ms so kcat's end-of-partition check does not
# add librdkafka's default 500 ms to a read-back),
# alternating, ROUNDS times. Every run is timed from outside the same way
# (wall clock of the whole client process, start-up and metadata included;
# CPU of the client process; CPU the server spent meanwhile). Prints each
# run as a JSON line, then the medians and the Kafka/gRPC ratios.
#
#   tests/bench/kafka_door.sh [RECORDS] [ROUNDS]
#
# STRATA_KAFKA_DOOR_CLIENT picks the Kafka client: `kcat` (default: C,
# librdkafka 2.0 from Debian; the client adds least of its own) or `python`
# (confluent-kafka 2.16 driven by a Python loop, tests/bench/kafka_door.py;
# needs the tests' venv, target/venv-kafka-clients-2). Data under target/;
# the server is ended by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS=${1:-1000000}
ROUNDS=${2:-3}
CLIENT=${STRATA_KAFKA_DOOR_CLIENT:-kcat}
PY=target/venv-kafka-clients-2/bin/python
case $CLIENT in
  kcat) command -v kcat >/dev/null || { echo "error: kcat missing (apt-get install kcat)" >&2; exit 2; } ;;
  python) [ -x "$PY" ] || { echo "error: $PY missing: run 'cargo test -p strata-tests --test kafka_clients' once" >&2; exit 2; } ;;
  *) echo "error: STRATA_KAFKA_DOOR_CLIENT must be kcat or python" >&2; exit 2 ;;
esac
[ -x target/release/strata-server ] || cargo build --release --locked --bins
BIN=target/release
DATA=$(mktemp -d "${STRATA_BENCH_DIR:-target}/kafka-door.XXXXXX")
PORT=$((21000 + (RANDOM % 400) * 10))
"$BIN/strata-server" dev --data-dir "$DATA/data" --listen 127.0.0.1:$PORT --controller-listen 127.0.0.1:$((PORT + 1)) \
  --http-listen 127.0.0.1:$((PORT + 2)) --kafka-listen 127.0.0.1:$((PORT + 3)) >"$DATA/server.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$((PORT + 2))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
KAFKA=127.0.0.1:$((PORT + 3))
if [ "$CLIENT" = kcat ]; then
  # kcat produces one record per line: RECORDS lines of 1023 bytes + '\n'.
  python3 -c "
import os, base64, sys
line = base64.b64encode(os.urandom(768))[:1023] + b'\n'
with open(sys.argv[1], 'wb') as f:
    for _ in range(int(sys.argv[2])): f.write(line)
" "$DATA/lines" "$RECORDS"
fi
PRODUCER=(-X acks=1 -X linger.ms=5 -X batch.size=1048576 -X queue.buffering.max.kbytes=1048576
  -X queue.buffering.max.messages=1000000 -X enable.idempotence=false)
CONSUMER=(-X fetch.max.bytes=67108864 -X max.partition.fetch.bytes=16777216 -X fetch.wait.max.ms=5)
kafka_client() { # op topic
  if [ "$CLIENT" = kcat ]; then
    if [ "$1" = produce ]; then kcat -P -b "$KAFKA" -t "$2" -p 0 "${PRODUCER[@]}" -l "$DATA/lines"
    else kcat -C -b "$KAFKA" -t "$2" -o beginning -e -q -f '%o\n' "${CONSUMER[@]}" >/dev/null; fi
  elif [ "$1" = produce ]; then "$PY" tests/bench/kafka_door.py produce "$KAFKA" "$2" "$RECORDS" 1024 >/dev/null
  else "$PY" tests/bench/kafka_door.py consume "$KAFKA" "$2" "$RECORDS" >/dev/null; fi
}
grpc_client() { # op topic
  if [ "$1" = produce ]; then
    "$BIN/strata" --bootstrap 127.0.0.1:$PORT bench produce --topic "$2" --records "$RECORDS" --record-size 1024 --acks 1 --json >/dev/null 2>&1
  else
    "$BIN/strata" --bootstrap 127.0.0.1:$PORT bench consume --topic "$2" --json >/dev/null 2>&1
  fi
}
ticks() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
hz=$(getconf CLK_TCK)
RESULTS=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  for door in kafka grpc; do
    topic="$door-$round"
    "$BIN/strata" --bootstrap 127.0.0.1:$PORT topic create "$topic" -p 1 -r 1 -c flush.policy=interval >/dev/null
    for op in produce consume; do
      s0=$(ticks)
      /usr/bin/time -f '%e %U %S' -o "$DATA/time" bash -c "$(declare -f kafka_client grpc_client); $(declare -p CLIENT KAFKA DATA RECORDS PY BIN PORT PRODUCER CONSUMER); ${door}_client $op $topic"
      server=$(python3 -c "print(($(ticks) - $s0) / $hz)")
      read -r wall user sys <"$DATA/time"
      echo "{\"door\":\"$door\",\"op\":\"$op\",\"round\":$round,\"records\":$RECORDS,\"wall\":$wall,\"client_cpu\":$(python3 -c "print($user + $sys)"),\"server_cpu\":$server}" | tee -a "$RESULTS"
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
        n = rs[0]["records"]
        mb = statistics.median(n * 1024 / r["wall"] / 1e6 for r in rs)
        cli = statistics.median(r["client_cpu"] for r in rs) / n * 1e6
        srv = statistics.median(r["server_cpu"] for r in rs) / n * 1e6
        med[(door, op)] = mb
        print(f"{door:6} {op:8} {mb:8.1f} MB/s   client {cli:5.2f} CPU-s/M   server {srv:5.2f} CPU-s/M")
for op in ("produce", "consume"):
    print(f"{op}: Kafka door / gRPC door = {med[('kafka', op)] / med[('grpc', op)]:.2f}x")
PY
rm -f "$RESULTS"
