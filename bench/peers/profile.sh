#!/usr/bin/env bash
# Where minutely's time goes under the peers benchmark: runs it (print only)
# and attaches `perf record` to minutely's first process (the timed ingest)
# and its last one (live minutes and the queries), then prints the hottest
# functions of each by self time.
#
#   bench/peers/profile.sh [flags of minutely-peers-bench, e.g. --series 10000 --minutes 360]
#
# Needs perf (Debian: linux-perf) and a release build with debug info
# (the workspace's release profile has debug = 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
out="${PROFILE_OUT:-$(mktemp -d)}"
bin="$(cd "$target/release" && pwd)/minutely"

bench/peers/run.sh --no-doc "$@" > "$out/bench.txt" &
bench=$!

# The benchmark starts minutely three times: ingest, distributions, queries.
seen=()
attach() {
  local name="$1" pid=""
  while [ -z "$pid" ]; do
    kill -0 "$bench" 2>/dev/null || return 1
    for p in $(pgrep -x minutely || true); do
      [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$bin" ] || continue
      [[ " ${seen[*]:-} " == *" $p "* ]] && continue
      pid="$p"
    done
    sleep 0.2
  done
  seen+=("$pid")
  if [ "$name" = skip ]; then
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  else
    perf record -F 499 -p "$pid" -o "$out/$name.data" 2> "$out/$name.log"
  fi
}
attach ingest
attach skip
attach query
wait "$bench"
for name in ingest query; do
  echo "== $name: hottest functions (self time, minutely only)"
  perf report -i "$out/$name.data" --no-children --sort symbol --percent-limit 1.5 --stdio 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | sed 's/ *- *- *$//' | head -25
done
echo "(raw data and the benchmark's table in $out)"
