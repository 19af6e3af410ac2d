//! OTLP/HTTP JSON bodies (`POST /v1/metrics`): decoded, then converted to
//! points twice (cumulative streams remember the first). Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minutely_server::ingest::otlp::{convert, json};

const NOW: f64 = 1_764_100_000.0;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = json::decode(data) else {
        return;
    };
    let routes: Vec<convert::Route> = req
        .resource_metrics
        .iter()
        .map(|_| Ok(("default".to_string(), "default".to_string())))
        .collect();
    let streams = convert::Streams::new(NOW - 60.0);
    let _ = convert::convert(&req, &routes, &streams, NOW, 86_400.0);
    let _ = convert::convert(&req, &routes, &streams, NOW + 60.0, 86_400.0);
});
