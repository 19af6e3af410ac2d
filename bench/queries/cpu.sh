#!/bin/sh
# cpu.sh PID PORT REPS QUERY: server CPU time (user + system) per query, in
# ms, over REPS runs after 2 warm-up runs (START as for timeq.py).
PID=$1; PORT=$2; REPS=$3; Q=$4
here=$(dirname "$0")
python3 "$here/timeq.py" "$PORT" 2 "$Q" > /dev/null
a=$(awk '{print $14+$15}' "/proc/$PID/stat")
python3 "$here/timeq.py" "$PORT" "$REPS" "$Q" | head -1
b=$(awk '{print $14+$15}' "/proc/$PID/stat")
ticks=$(getconf CLK_TCK)
echo "   server cpu per query: $(( (b - a) * 1000 / ticks / (REPS + 2) )) ms"
