# timeq.py PORT REPS [query...]: median ms of the benchmark's queries over
# one keep-alive connection, and an md5 of each answer. START (env) is the
# start of the pushed day (minutely-bench writes it to DIR.start).
import hashlib, http.client, os, statistics, sys, time

port, reps = int(sys.argv[1]), int(sys.argv[2])
start = int(os.environ["START"])
end = start + 1440 * 60
QUERIES = {
    "day": f"metric=bench_gauge_0&field=last&tag=host:host-0000&tag=region:eu-west&from={start}&to={end}&step=60",
    "month": f"metric=bench_gauge_0&field=mean&tag=host:host-0000&tag=region:eu-west&from={end - 30 * 86400}&to={end}&step=3600",
    "grouped": f"metric=bench_gauge_1&field=last&group_by=region&from={start}&to={end}&step=60",
    "counter": f"metric=bench_counter_5&field=sum&group_by=region&from={start}&to={end}&step=60",
    "counter5": f"metric=bench_counter_5&field=sum&group_by=region&from={start}&to={end}&step=300",
    "dmean": f"metric=bench_latency_ms&field=mean&from={start}&to={end}&step=3600",
    "p95": f"metric=bench_latency_ms&field=p95&from={start}&to={end}&step={end - start}",
}
conn = http.client.HTTPConnection("127.0.0.1", port)
for name in sys.argv[3:] or list(QUERIES):
    url = "/api/v1/query?app=default&env=bench&" + QUERIES[name]
    times = []
    for i in range(reps + 2):
        t = time.perf_counter()
        conn.request("GET", url, headers={"Authorization": "Bearer bench-admin-key"})
        body = conn.getresponse().read()
        if i >= 2:
            times.append((time.perf_counter() - t) * 1000)
    print(f"{name:8} median {statistics.median(times):8.2f} ms  min {min(times):8.2f}  "
          f"md5 {hashlib.md5(body).hexdigest()[:10]} len {len(body)}")
