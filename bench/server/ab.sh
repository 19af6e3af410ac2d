#!/usr/bin/env bash
# Compares the push of two or more server builds: runs the server
# benchmark's push (--push-only) for each build in turn, ROUNDS rounds
# alternating, then prints each build's median points/s and server CPU per
# point. The machine's speed drifts within minutes, so only alternating
# rounds and medians compare builds fairly.
#
#   cargo build --release -p minutely-bench
#   bench/server/ab.sh ROUNDS SERIES BIN_A BIN_B [BIN ...]
#
# BIN: a release `minutely` binary (copy each build somewhere first).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -lt 4 ]; then
  echo "usage: $0 ROUNDS SERIES BIN_A BIN_B [BIN ...]" >&2
  exit 2
fi
rounds=$1 series=$2
shift 2
bench="${CARGO_TARGET_DIR:-target}/release/minutely-bench"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    line=$("$bench" --bin "$bin" --series "$series" --minutes 360 --push-only | tail -n 1)
    echo "$bin $line" | tee -a "$out"
  done
done
python3 - "$out" "$@" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for b in sys.argv[2:]:
    # "<bin> push: N points/s, server CPU M ns a point"
    mine = [r for r in rows if r[0] == b]
    rate = [int(r[2]) for r in mine]
    cpu = sorted(int(r[6]) for r in mine)
    print(f"{b}: median {statistics.median(rate):.0f} points/s, "
          f"{statistics.median(cpu):.0f} ns a point (each run: {cpu})")
PY
