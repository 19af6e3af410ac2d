//! Per-call cost of recording one value: minutely-client's helpers, its
//! `metrics` recorder (through the macros, and through a kept handle), and
//! metrics-exporter-prometheus for the same macro and handle calls.
//!
//! Run: `cargo bench -p minutely-client-bench`. Calls are timed in chunks
//! of 10,000; between chunks (untimed) the Prometheus recorder runs its
//! upkeep, which drains its histogram buffers as its HTTP listener would,
//! so its memory stays bounded as minutely's does by design.

use criterion::{criterion_group, criterion_main, Criterion};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::hint::black_box;
use std::time::{Duration, Instant};

const CHUNK: u64 = 10_000;

/// Values for distributions: log-uniform over 1..10,000 (many sketch keys).
fn values() -> Vec<f64> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 4.0)
        })
        .collect()
}

/// Times `iters` calls of `f(i)` in chunks, running `between` untimed.
fn timed(iters: u64, mut f: impl FnMut(u64), between: &dyn Fn()) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        let start = Instant::now();
        for i in done..done + n {
            f(i);
        }
        total += start.elapsed();
        done += n;
        between();
    }
    total
}

fn bench(c: &mut Criterion) {
    let client = minutely_client::Client::new();
    let ours = client.recorder();
    let prom = PrometheusBuilder::new().build_recorder();
    let prom_handle: PrometheusHandle = prom.handle();
    let upkeep = || prom_handle.run_upkeep();
    let nothing = || {};
    let vals = values();
    let v = |i: u64| vals[(i & 1023) as usize];

    let mut g = c.benchmark_group("counter");
    g.bench_function("minutely increment_counter", |b| {
        b.iter_custom(|n| {
            timed(
                n,
                |_| {
                    client.increment_counter(
                        black_box("requests"),
                        1.0,
                        &[("route", "/api"), ("status", "200")],
                    )
                },
                &nothing,
            )
        })
    });
    g.bench_function("minutely recorder counter!", |b| {
        metrics::with_local_recorder(&ours, || {
            b.iter_custom(|n| {
                timed(
                    n,
                    |_| {
                        metrics::counter!("requests", "route" => "/api", "status" => "200")
                            .increment(1)
                    },
                    &nothing,
                )
            })
        })
    });
    g.bench_function("prometheus counter!", |b| {
        metrics::with_local_recorder(&prom, || {
            b.iter_custom(|n| {
                timed(
                    n,
                    |_| {
                        metrics::counter!("requests", "route" => "/api", "status" => "200")
                            .increment(1)
                    },
                    &upkeep,
                )
            })
        })
    });
    let h = metrics::with_local_recorder(&ours, || metrics::counter!("requests_h"));
    g.bench_function("minutely handle increment", |b| {
        b.iter_custom(|n| timed(n, |_| h.increment(1), &nothing))
    });
    let h = metrics::with_local_recorder(&prom, || metrics::counter!("requests_h"));
    g.bench_function("prometheus handle increment", |b| {
        b.iter_custom(|n| timed(n, |_| h.increment(1), &upkeep))
    });
    g.finish();

    let mut g = c.benchmark_group("gauge");
    g.bench_function("minutely set_gauge", |b| {
        b.iter_custom(|n| {
            timed(
                n,
                |i| client.set_gauge(black_box("active"), i as f64, &[("region", "eu")]),
                &nothing,
            )
        })
    });
    g.bench_function("minutely recorder gauge!", |b| {
        metrics::with_local_recorder(&ours, || {
            b.iter_custom(|n| {
                timed(
                    n,
                    |i| metrics::gauge!("active", "region" => "eu").set(i as f64),
                    &nothing,
                )
            })
        })
    });
    g.bench_function("prometheus gauge!", |b| {
        metrics::with_local_recorder(&prom, || {
            b.iter_custom(|n| {
                timed(
                    n,
                    |i| metrics::gauge!("active", "region" => "eu").set(i as f64),
                    &upkeep,
                )
            })
        })
    });
    let h = metrics::with_local_recorder(&ours, || metrics::gauge!("active_h"));
    g.bench_function("minutely handle set", |b| {
        b.iter_custom(|n| timed(n, |i| h.set(i as f64), &nothing))
    });
    let h = metrics::with_local_recorder(&prom, || metrics::gauge!("active_h"));
    g.bench_function("prometheus handle set", |b| {
        b.iter_custom(|n| timed(n, |i| h.set(i as f64), &upkeep))
    });
    g.finish();

    let mut g = c.benchmark_group("distribution");
    g.bench_function("minutely add_distribution_value", |b| {
        b.iter_custom(|n| {
            timed(
                n,
                |i| client.add_distribution_value(black_box("latency"), v(i), &[("route", "/api")]),
                &nothing,
            )
        })
    });
    g.bench_function("minutely recorder histogram!", |b| {
        metrics::with_local_recorder(&ours, || {
            b.iter_custom(|n| {
                timed(
                    n,
                    |i| metrics::histogram!("latency", "route" => "/api").record(v(i)),
                    &nothing,
                )
            })
        })
    });
    g.bench_function("prometheus histogram!", |b| {
        metrics::with_local_recorder(&prom, || {
            b.iter_custom(|n| {
                timed(
                    n,
                    |i| metrics::histogram!("latency", "route" => "/api").record(v(i)),
                    &upkeep,
                )
            })
        })
    });
    let h = metrics::with_local_recorder(&ours, || metrics::histogram!("latency_h"));
    g.bench_function("minutely handle record", |b| {
        b.iter_custom(|n| timed(n, |i| h.record(v(i)), &nothing))
    });
    let h = metrics::with_local_recorder(&prom, || metrics::histogram!("latency_h"));
    g.bench_function("prometheus handle record", |b| {
        b.iter_custom(|n| timed(n, |i| h.record(v(i)), &upkeep))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
