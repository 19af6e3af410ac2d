#!/usr/bin/env bash
# A bounded fuzzing run of every target, for CI: builds the targets with
# libFuzzer (cargo fuzz, on the stable toolchain through RUSTC_BOOTSTRAP,
# without a sanitizer: the code is safe Rust, panics are what we look for),
# then fuzzes each for FUZZ_SECS seconds (default 4) from its committed
# corpus. New inputs go to a temporary directory, so the run leaves the
# committed corpus as it is. A crash leaves its input in fuzz/artifacts/.
#
# The build compiles the server crate again with coverage instrumentation
# (about 4 minutes cold on 2 cores, seconds when warm), so its target
# directory lives outside the clone by default and survives between runs:
# FUZZ_TARGET_DIR overrides it.
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECS:-4}"
target_dir="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/minutely/fuzz-target}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install -q cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1
# The fuzz build is a release build of the server, whose build script would
# otherwise install and bundle the web UI (npm): the parsers do not need it.
export MINUTELY_WEB=skip
started=$(date +%s)
cargo fuzz build -s none --target-dir "$target_dir"
echo "fuzz: built in $(( $(date +%s) - started )) s"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
targets=$(cargo fuzz list)
for t in $targets; do
  mkdir -p "$work/$t"
  # -timeout: one input taking over 5 s is a hang, and a failure.
  if ! cargo fuzz run -s none --target-dir "$target_dir" "$t" "$work/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=0 >"$work/$t.log" 2>&1; then
    tail -60 "$work/$t.log" >&2
    echo "fuzz: target $t failed; its input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  echo "fuzz: $t ok ($(grep -c . <(ls "$work/$t")) new inputs in ${secs} s)"
done
echo "fuzz: all targets ok in $(( $(date +%s) - started )) s"
