# push_dists.py URL START [SERIES]: pushes SERIES (default 1,000)
# distribution series x 1,440 minutes from START (unix seconds, a whole
# minute), 5 log-normal latencies per series and minute as one
# pre-aggregated point each, like the side-by-side benchmark's.
import json, math, random, sys, urllib.request
url, start = sys.argv[1], int(sys.argv[2])
series, minutes = int(sys.argv[3]) if len(sys.argv) > 3 else 1000, 1440
MULT = 1.0 / math.log1p(2 * 0.01 / 0.99)
def key(v): return math.ceil(math.log(v) * MULT)
batch, pts = [], 0
def flush():
    global batch
    body = json.dumps({"env": "bench", "points": batch}).encode()
    req = urllib.request.Request(url + "/api/v1/push", data=body, method="POST",
        headers={"Authorization": "Bearer bench-push-key", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    batch = []
for m in range(minutes):
    minute = start + m * 60
    for n in range(series):
        rng = random.Random(n * 100003 + m)
        med = 20.0 + (n % 7) * 5.0
        vals = [round(med * math.exp(0.6 * rng.gauss(0, 1)) * 100) / 100 for _ in range(5)]
        bins = {}
        for v in vals:
            k = key(v); bins[k] = bins.get(k, 0) + 1
        batch.append({"kind": "distribution", "name": "bench_latency_ms", "ts": minute + 17,
            "tags": {"host": "host-%04d" % (n // 4), "region": ["eu-west","eu-north","us-east","ap-south"][n % 4]},
            "summary": {"count": 5, "sum": sum(vals), "min": min(vals), "max": max(vals),
                        "sketch": {"alpha": 0.01, "pos": sorted(bins.items()), "neg": [], "zero": 0}}})
        if len(batch) == 5000: flush()
if batch: flush()
print("pushed", minutes * series)
