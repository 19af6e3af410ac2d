#!/usr/bin/env bash
# StatsD lines per second received without loss on loopback: minutely's
# StatsD listener beside VictoriaMetrics' Graphite UDP listener, the same
# samples (1,000 series x 7 hosts, counters) sent by the same paced sender,
# in one run on this machine. Needs Debian's `victoria-metrics` package.
#
# Usage: bench/statsd/run.sh [SECONDS_PER_STEP] [RATES...]
# Prints one markdown table row per (rate, server).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-3}"; shift || true
[ $# -gt 0 ] && RATES=("$@") || RATES=(250000 500000 1000000 2000000 4000000)
HTTP=18480; STATSD=18425; VM_HTTP=18428; VM_GRAPHITE=18403
WORK="$(mktemp -d /tmp/minutely-statsd-bench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

command -v victoria-metrics >/dev/null || { echo "install Debian's victoria-metrics package first (apt-get install victoria-metrics)" >&2; exit 1; }
cargo build -q --release -p minutely
rustc -O --edition 2021 bench/statsd/blast.rs -o target/statsd-blast

MINUTELY_PUSH_KEY=bench-push MINUTELY_ADMIN_KEY=bench-admin MINUTELY_LOG=warn \
  target/release/minutely serve --listen 127.0.0.1:$HTTP --data-dir "$WORK/minutely" \
  --statsd 127.0.0.1:$STATSD >"$WORK/minutely.log" 2>&1 &
PIDS+=($!)
victoria-metrics -httpListenAddr=127.0.0.1:$VM_HTTP -graphiteListenAddr=127.0.0.1:$VM_GRAPHITE \
  -storageDataPath="$WORK/vm" -loggerLevel=WARN >"$WORK/vm.log" 2>&1 &
PIDS+=($!)
for url in "http://127.0.0.1:$HTTP/healthz" "http://127.0.0.1:$VM_HTTP/health"; do
  for _ in $(seq 150); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.2; done
done

counter() { # URL METRIC_LINE_PREFIX
  curl -fsS "$1" | awk -v p="$2" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }'
}
minutely_received() { counter "http://127.0.0.1:$HTTP/metrics" "minutely_statsd_values_total "; }
vm_received() { counter "http://127.0.0.1:$VM_HTTP/metrics" 'vm_rows_inserted_total{type="graphite"}'; }
kernel_drops() { awk -v port="$(printf ':%04X' "$1")" 'NR > 1 && index($2, port) { s += $NF } END { print s + 0 }' /proc/net/udp; }

echo "| offered lines/s | server | sent | received | lost | kernel drops |"
echo "|---|---|---|---|---|---|"
for rate in "${RATES[@]}"; do
  lines=$((rate * SECS))
  for target in minutely victoriametrics; do
    if [ "$target" = minutely ]; then port=$STATSD; fmt=statsd; get=minutely_received
    else port=$VM_GRAPHITE; fmt=graphite; get=vm_received; fi
    before=$($get); kd0=$(kernel_drops $port)
    out=$(target/statsd-blast 127.0.0.1:$port $fmt $lines $rate 25 1000)
    sleep 3
    after=$($get); kd1=$(kernel_drops $port)
    got=$((after - before))
    achieved=$(echo "$out" | awk '{print $(NF-1)}')
    echo "| $rate (sent at $achieved) | $target | $lines | $got | $((lines - got)) | $((kd1 - kd0)) |"
  done
done
