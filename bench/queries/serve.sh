#!/bin/sh
# serve.sh BIN PORT DIR [flags]: minutely on DIR with the benchmark's keys
# and windows, in the foreground.
BIN=$1; PORT=$2; DIR=$3; shift 3
exec env MINUTELY_PUSH_KEY=bench-push-key MINUTELY_ADMIN_KEY=bench-admin-key MINUTELY_LOG=warn \
  "$BIN" serve --listen "127.0.0.1:$PORT" --statsd off --checkpoint-secs 300 \
  --late-window-secs 172800 --retention-minutely-days 30 --retention-hourly-days 400 \
  --data-dir "$DIR" "$@"
