#!/usr/bin/env bash
# Side-by-side benchmark: minutely, VictoriaMetrics and Prometheus on one
# deterministic workload. Installs the peers from Debian's packages if they
# are missing, builds the release binaries, runs the benchmark and writes its
# table into docs/BENCHMARKS.md.
#
#   bench/peers/run.sh                    # 10,000 series x 1 day
#   bench/peers/run.sh --series 1000      # any flag of minutely-peers-bench
#   bench/peers/run.sh --growth           # 1,000, 10,000 and 100,000 series
#   bench/peers/run.sh --no-doc ...       # print only
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v victoria-metrics >/dev/null || ! command -v prometheus >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  $SUDO apt-get install -y victoria-metrics prometheus
fi

target="${CARGO_TARGET_DIR:-target}"
# The web UI is not needed to measure the server.
MINUTELY_WEB="${MINUTELY_WEB:-skip}" cargo build --release -p minutely -p minutely-peers-bench

doc=(--doc docs/BENCHMARKS.md)
args=()
for a in "$@"; do
  if [ "$a" = "--no-doc" ]; then doc=(); else args+=("$a"); fi
done
exec "$target/release/minutely-peers-bench" \
  --minutely-bin "$target/release/minutely" \
  --victoria-bin "$(command -v victoria-metrics)" \
  --prometheus-bin "$(command -v prometheus)" \
  --command "bench/peers/run.sh${args[*]:+ ${args[*]}}" \
  "${doc[@]}" "${args[@]}"
