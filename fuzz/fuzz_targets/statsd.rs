//! StatsD/DogStatsD datagrams: parsed line by line into the per-minute
//! aggregator with tag routing on, then flushed. Never panics, and
//! whatever is flushed is finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minutely_server::ingest::statsd::aggregate::{add_packet, Aggregator, Routing};

const NOW: f64 = 1_764_100_000.0;

fuzz_target!(|data: &[u8]| {
    let routing = Routing {
        app: "default".into(),
        env: "default".into(),
        tags_choose: true,
    };
    let mut agg = Aggregator::new(routing, 86_400.0);
    add_packet(&mut agg, data, NOW, |_| {});
    // Twice: gauges keep their last value across minutes.
    add_packet(&mut agg, data, NOW + 60.0, |_| {});
    for req in agg.flush(NOW + 600.0) {
        for (_, p) in &req.points {
            assert!(p.ts.is_finite(), "flushed point with ts {}", p.ts);
        }
    }
});
