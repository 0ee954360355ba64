#!/usr/bin/env bash
# Strata's performance scenarios (docs/performance.md), each beside a
# baseline measured in the same run, printed as one table with client and
# server CPU per record. Release builds only; everything on 127.0.0.1.
#
#   tests/bench/run.sh [--records N] [--e2e-seconds S] [--baseline BINDIR] [--only GROUPS] [--scale] [BINDIR]
#
# --only runs some scenario groups (comma-separated): tmpfs, disk,
# group-commit, window, e2e, cluster (default: all of them).
#
# --scale adds (new build only, ~2 min and 10 GiB of disk): 10,000 partitions
# on one broker (restart time, RSS, descriptors, maps) and a restart after
# kill -9 with 10 GiB in one partition's log (time until it serves again).
#
# BINDIR holds `strata` and `strata-server` (default: target/release, built
# first if missing). --baseline runs every Strata scenario a second time with
# another build (e.g. the commit before a change, built beside it with
# `git worktree`), interleaved, so the table shows new/old ratios from one
# run. Data directories go under $STRATA_BENCH_DIR (default target/bench-data)
# and /dev/shm; both are removed at the end. Servers are ended by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."

RECORDS=1000000
E2E_SECONDS=10
BASELINE=""
BIN=""
SCALE=0
ONLY=tmpfs,disk,group-commit,window,e2e,cluster
while [ $# -gt 0 ]; do
  case "$1" in
    --records) RECORDS=$2; shift 2 ;;
    --e2e-seconds) E2E_SECONDS=$2; shift 2 ;;
    --baseline) BASELINE=$2; shift 2 ;;
    --scale) SCALE=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) BIN=$1; shift ;;
  esac
done
if [ -z "$BIN" ]; then
  BIN=target/release
  [ -x "$BIN/strata-server" ] && [ -x "$BIN/strata" ] || cargo build --release --locked --bins
fi
for b in "$BIN" ${BASELINE:+"$BASELINE"}; do
  [ -x "$b/strata-server" ] && [ -x "$b/strata" ] || { echo "error: $b lacks strata and strata-server" >&2; exit 2; }
done

DISK_ROOT=${STRATA_BENCH_DIR:-target/bench-data}
mkdir -p "$DISK_ROOT"
DISK_ROOT=$(cd "$DISK_ROOT" && pwd)
RESULTS=$(mktemp /tmp/strata-bench.XXXXXX)
SPID=""
cleanup() {
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
  for c in "$DISK_ROOT"/run.cluster.*; do
    [ -d "$c" ] && STRATA_CLUSTER_DIR=$c deploy/local-cluster.sh down >/dev/null 2>&1
  done
  rm -rf "$DISK_ROOT"/run.* /dev/shm/strata-bench.* 2>/dev/null || true
}
trap cleanup EXIT
SIZE_MB=$(( (RECORDS * 1024 + 1048575) / 1048576 ))

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }          # utime+stime, clock ticks
hz=$(getconf CLK_TCK)
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }              # JSON-safe arithmetic
wbytes() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }

# start_server BIN ROOT: a fresh one-node server with its data under ROOT
# (another random port if the one drawn is taken).
start_server() {
  local bin=$1 root=$2
  DATA=$(mktemp -d "$root/run.XXXXXX" 2>/dev/null || mktemp -d "$root/strata-bench.XXXXXX")
  for _attempt in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 20000))
    "$bin/strata-server" dev --data-dir "$DATA/data" --listen 127.0.0.1:$PORT \
      --controller-listen 127.0.0.1:$((PORT + 1)) --http-listen 127.0.0.1:$((PORT + 2)) >"$DATA/server.log" 2>&1 &
    SPID=$!
    for _ in $(seq 1 200); do
      curl -sf "http://127.0.0.1:$((PORT + 2))/readyz" >/dev/null 2>&1 && return 0
      kill -0 "$SPID" 2>/dev/null || break
      sleep 0.05
    done
    grep -q "Address already in use" "$DATA/server.log" || break
    wait "$SPID" 2>/dev/null || true
  done
  echo "error: the server did not become ready; its log:" >&2; cat "$DATA/server.log" >&2; exit 1
}
stop_server() { kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=""; rm -rf "$DATA"; }

# client BIN ARGS...: runs the CLI against the server; its last JSON line
# in $OUT, its CPU seconds in $CLIENT_CPU (not in a subshell: it sets them).
client() {
  local bin=$1; shift
  local t o; t=$(mktemp); o=$(mktemp)
  /usr/bin/time -f "%U %S" -o "$t" "$bin/strata" --bootstrap "127.0.0.1:$PORT" "$@" >"$o" 2>/dev/null
  CLIENT_CPU=$(awk '{print $1 + $2}' "$t"); OUT=$(tail -1 "$o"); rm -f "$t" "$o"
}

# record LABEL BUILD JSON CLIENT_CPU SERVER_CPU DISK_WRITE_BYTES
record() { echo "{\"scenario\":\"$1\",\"build\":\"$2\",\"client_cpu\":$4,\"server_cpu\":$5,\"disk_write_bytes\":$6,\"result\":$3}" >>"$RESULTS"; }

# produce_scenario NAME BUILD BIN ROOT TOPIC_CONFIGS PRODUCE_ARGS...
produce_scenario() {
  local name=$1 build=$2 bin=$3 root=$4 configs=$5; shift 5
  start_server "$bin" "$root"
  # shellcheck disable=SC2086
  "$bin/strata" --bootstrap "127.0.0.1:$PORT" topic create bench -p 1 -r 1 $configs >/dev/null
  local s0 w0; s0=$(ticks $SPID); w0=$(wbytes $SPID)
  client "$bin" bench produce --topic bench --records "$RECORDS" --record-size 1024 --json "$@"
  record "$name" "$build" "$OUT" "$CLIENT_CPU" "$(calc "($(ticks $SPID) - $s0) / $hz")" $(( $(wbytes $SPID) - w0 ))
  if [ "$name" = produce-group-commit ]; then
    s0=$(ticks $SPID)
    client "$bin" bench consume --topic bench --json
    record read-back "$build" "$OUT" "$CLIENT_CPU" "$(calc "($(ticks $SPID) - $s0) / $hz")" 0
  fi
  stop_server
}

e2e_scenario() {
  local name=$1 build=$2 bin=$3 configs=$4 acks=$5
  start_server "$bin" "$DISK_ROOT"
  # shellcheck disable=SC2086
  "$bin/strata" --bootstrap "127.0.0.1:$PORT" topic create e2e -p 1 -r 1 $configs >/dev/null
  local s0 w0; s0=$(ticks $SPID); w0=$(wbytes $SPID)
  client "$bin" bench e2e --topic e2e --rate 5000 --records $((5000 * E2E_SECONDS)) --warmup-records 1000 --acks "$acks" --json
  record "$name" "$build" "$OUT" "$CLIENT_CPU" "$(calc "($(ticks $SPID) - $s0) / $hz")" $(( $(wbytes $SPID) - w0 ))
  stop_server
}

# cluster_scenario BUILD BIN: a 3-node deploy/local-cluster.sh cluster;
# acks=all to an RF=3 topic against acks=1 to an RF=1 topic of the same
# cluster (the issue's 0.6x target), CPU summed over the three servers.
cluster_scenario() {
  local build=$1 bin=$2
  local dir; dir=$(mktemp -d "$DISK_ROOT/run.cluster.XXXXXX")
  local base=$((20000 + (RANDOM % 400) * 50))
  STRATA_CLUSTER_DIR=$dir STRATA_BIN_DIR=$bin STRATA_BASE_PORT=$base deploy/local-cluster.sh up 3 >/dev/null 2>&1 || {
    echo "error: the 3-node cluster did not start" >&2; STRATA_CLUSTER_DIR=$dir deploy/local-cluster.sh down >/dev/null 2>&1 || true; return 1; }
  PORT=$base
  "$bin/strata" --bootstrap "127.0.0.1:$base" topic create rf3 -p 1 -r 3 >/dev/null
  "$bin/strata" --bootstrap "127.0.0.1:$base" topic create rf1 -p 1 -r 1 >/dev/null
  "$bin/strata" --bootstrap "127.0.0.1:$base" topic create rf3x8 -p 8 -r 3 >/dev/null
  local pids; pids=$(cat "$dir"/node*.pid)
  cluster_ticks() { local t=0 p; for p in $pids; do t=$((t + $(ticks "$p"))); done; echo $t; }
  local s0
  for spec in "rf1 1 rf1-acks-1" "rf3 all rf3-acks-all" "rf3x8 all rf3x8-acks-all"; do
    set -- $spec
    s0=$(cluster_ticks)
    client "$bin" bench produce --topic "$1" --records "$RECORDS" --record-size 1024 --acks "$2" --json
    record "$3" "$build" "$OUT" "$CLIENT_CPU" "$(calc "($(cluster_ticks) - $s0) / $hz")" 0
  done
  STRATA_CLUSTER_DIR=$dir deploy/local-cluster.sh down >/dev/null 2>&1 || true
  rm -rf "$dir"
}

dd_baseline() {
  local name=$1 root=$2; shift 2
  local f="$root/run.dd.$$" start end
  start=$(date +%s.%N)
  dd if=/dev/zero of="$f" bs=1M count="$SIZE_MB" "$@" 2>/dev/null
  end=$(date +%s.%N)
  rm -f "$f"
  local secs; secs=$(calc "$end - $start")
  record "$name" dd "{\"mb_per_sec\":$(calc "$SIZE_MB * 1.048576 / $secs"),\"seconds\":$secs}" 0 0 0
}

wanted() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

builds=("new:$BIN")
[ -n "$BASELINE" ] && builds+=("old:$BASELINE")
echo "strata bench: $RECORDS records of 1 KiB per produce scenario, e2e ${E2E_SECONDS} s at 5000/s; builds: ${builds[*]}" >&2
for b in "${builds[@]}"; do
  build=${b%%:*}; bin=${b#*:}
  if wanted tmpfs; then
    echo "  [$build] produce on tmpfs (acks=1, flush.policy=interval)" >&2
    produce_scenario produce-tmpfs "$build" "$bin" /dev/shm "-c flush.policy=interval" --acks 1
    dd_baseline dd-tmpfs /dev/shm
  fi
  if wanted disk; then
    echo "  [$build] produce on disk (acks=1, flush.policy=interval)" >&2
    produce_scenario produce-interval "$build" "$bin" "$DISK_ROOT" "-c flush.policy=interval" --acks 1
    dd_baseline dd-disk "$DISK_ROOT"
  fi
  if wanted group-commit; then
    echo "  [$build] produce on disk with group commit (acks=1), then read back" >&2
    produce_scenario produce-group-commit "$build" "$bin" "$DISK_ROOT" "" --acks 1
    dd_baseline dd-disk-fdatasync "$DISK_ROOT" conv=fdatasync
  fi
  if wanted window; then
    echo "  [$build] produce with 1000 records in flight (acks=all, group commit)" >&2
    # (a build older than `bench produce --window` skips the bounded window)
    if "$bin/strata" bench produce --help | grep -q -- --window; then
      produce_scenario produce-window-1000 "$build" "$bin" "$DISK_ROOT" "" --acks all --window 1000
    fi
    produce_scenario produce-window-unbounded "$build" "$bin" "$DISK_ROOT" "" --acks all
  fi
  if wanted e2e; then
    echo "  [$build] end to end at 5000 records/s" >&2
    e2e_scenario e2e-5000-interval "$build" "$bin" "-c flush.policy=interval" 1
    e2e_scenario e2e-5000-group-commit "$build" "$bin" "" 1
    e2e_scenario e2e-5000-acks-all "$build" "$bin" "" all
  fi
  wanted cluster || continue
  echo "  [$build] 3 nodes on loopback: RF=3 acks=all vs RF=1 acks=1, one and eight partitions" >&2
  cluster_scenario "$build" "$bin"
done

# ready_seconds: how long until the server at $PORT answers /readyz.
ready_seconds() {
  local start; start=$(date +%s.%N)
  for _ in $(seq 1 1200); do
    curl -sf "http://127.0.0.1:$((PORT + 2))/readyz" >/dev/null 2>&1 && { calc "$(date +%s.%N) - $start"; return 0; }
    sleep 0.05
  done
  echo "error: not ready within 60 s" >&2; exit 1
}
restart_server() {  # SIGNAL: stop the server with it, start it again on the same data and ports
  kill "-$1" "$SPID"; wait "$SPID" 2>/dev/null || true
  "$BIN/strata-server" dev --data-dir "$DATA/data" --listen 127.0.0.1:$PORT \
    --controller-listen 127.0.0.1:$((PORT + 1)) --http-listen 127.0.0.1:$((PORT + 2)) >>"$DATA/server.log" 2>&1 &
  SPID=$!
}
if [ "$SCALE" = 1 ]; then
  echo "  [new] 10,000 partitions on one broker" >&2
  start_server "$BIN" "$DISK_ROOT"
  "$BIN/strata" --bootstrap "127.0.0.1:$PORT" topic create wide -p 10000 -r 1 >/dev/null
  sleep 5
  restart_server TERM
  secs=$(ready_seconds); sleep 2
  failed=$(grep -c "could not open partition log" "$DATA/server.log" || true)
  record partitions-10000 new "{\"ready_seconds\":$secs,\"rss_mb\":$(awk '/VmRSS/ {print $2 / 1024}' /proc/$SPID/status),\"descriptors\":$(ls /proc/$SPID/fd | wc -l),\"maps\":$(wc -l </proc/$SPID/maps),\"failed_partitions\":$failed}" 0 0 0
  stop_server
  echo "  [new] produce to 1,000 partitions at once (acks=all, group commit)" >&2
  start_server "$BIN" "$DISK_ROOT"
  "$BIN/strata" --bootstrap "127.0.0.1:$PORT" topic create many -p 1000 -r 1 >/dev/null
  s0=$(ticks $SPID); w0=$(wbytes $SPID)
  client "$BIN" bench produce --topic many --records "$RECORDS" --record-size 1024 --acks all --json
  record produce-1000-partitions new "$OUT" "$CLIENT_CPU" "$(calc "($(ticks $SPID) - $s0) / $hz")" $(( $(wbytes $SPID) - w0 ))
  stop_server
  echo "  [new] restart after kill -9 with 10 GiB in the log" >&2
  start_server "$BIN" "$DISK_ROOT"
  "$BIN/strata" --bootstrap "127.0.0.1:$PORT" topic create deep -p 1 -r 1 -c flush.policy=interval >/dev/null
  "$BIN/strata" --bootstrap "127.0.0.1:$PORT" bench produce --topic deep --records 10485760 --record-size 1024 --acks 1 --json >/dev/null 2>&1
  restart_server KILL
  secs=$(ready_seconds)
  end=$("$BIN/strata" --bootstrap "127.0.0.1:$PORT" --output json topic describe deep 2>/dev/null | tr -d '\n' | grep -o '"high_watermark":[0-9]*' | head -1 | cut -d: -f2)
  record restart-after-kill-10GiB new "{\"ready_seconds\":$secs,\"high_watermark\":${end:-0}}" 0 0 0
  stop_server
fi

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault((r["scenario"], r["build"]), []).append(r)
def one(s, b):
    v = by.get((s, b))
    return v[-1] if v else None
builds = [b for b in ("new", "old") if any(k[1] == b for k in by)]
print(f"{'scenario':<26} {'build':<5} {'MB/s':>8} {'rec/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'cli CPU-s/M':>11} {'srv CPU-s/M':>11} {'disk/payload':>12}")
for s in ["produce-tmpfs", "dd-tmpfs", "produce-interval", "dd-disk", "produce-group-commit", "dd-disk-fdatasync",
          "read-back", "produce-window-1000", "produce-window-unbounded", "e2e-5000-interval", "e2e-5000-group-commit", "e2e-5000-acks-all",
          "rf1-acks-1", "rf3-acks-all", "rf3x8-acks-all", "produce-1000-partitions"]:
    for b in (["dd"] if s.startswith("dd") else builds):
        r = one(s, b)
        if not r:
            continue
        res = r["result"]
        recs = res.get("records") or 0
        per_m = lambda cpu: f"{cpu / recs * 1e6:.2f}" if recs else "-"
        payload = res.get("bytes") or 0
        amp = f"{r['disk_write_bytes'] / payload:.2f}" if payload and r["disk_write_bytes"] else "-"
        f = lambda k: f"{res[k]:.3f}" if k in res else "-"
        print(f"{s:<26} {b:<5} {res.get('mb_per_sec', 0):>8.1f} {res.get('records_per_sec', 0):>10.0f} {f('p50_ms'):>8} {f('p99_ms'):>8} {f('p99_9_ms'):>9} {per_m(r['client_cpu']):>11} {per_m(r['server_cpu']):>11} {amp:>12}")
def ratio(s, b, t, k="mb_per_sec"):
    x, y = one(s, b), one(t, "dd" if t.startswith("dd") else b)
    if x and y and y["result"].get(k):
        return x["result"][k] / y["result"][k]
print()
for b in builds:
    parts = []
    for s, t in [("produce-tmpfs", "dd-tmpfs"), ("produce-interval", "dd-disk"), ("produce-group-commit", "dd-disk-fdatasync")]:
        r = ratio(s, b, t)
        if r:
            parts.append(f"{s} / {t} = {r:.2f}x")
    r = ratio("produce-window-1000", b, "produce-window-unbounded")
    if r:
        parts.append(f"window 1000 / unbounded = {r:.2f}x")
    r = ratio("rf3-acks-all", b, "rf1-acks-1")
    if r:
        parts.append(f"RF=3 acks=all / RF=1 acks=1 = {r:.2f}x")
    r = ratio("rf3x8-acks-all", b, "rf1-acks-1")
    if r:
        parts.append(f"RF=3 8 partitions / RF=1 = {r:.2f}x")
    print(f"[{b}] " + "; ".join(parts))
if "old" in builds:
    parts = []
    for s in sorted({k[0] for k in by if k[1] == "new"}):
        n, o = one(s, "new"), one(s, "old")
        k = "mb_per_sec" if n["result"].get("mb_per_sec") else None
        if k and o and o["result"].get(k):
            parts.append(f"{s} {n['result'][k] / o['result'][k]:.2f}x")
    print("new/old throughput: " + "; ".join(parts))
for s in ("partitions-10000", "restart-after-kill-10GiB"):
    r = one(s, "new")
    if r:
        print(f"{s}: " + ", ".join(f"{k} {v}" for k, v in r["result"].items()))
print(f"\nraw results: {sys.argv[1]}")
PY
