//! `POST /api/v1/push` bodies: gunzip (bounded) then `parse_push`. Never
//! panics; every point of the batch is either accepted or rejected, once.
#![no_main]

use axum::body::Bytes;
use axum::http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use minutely_server::{maybe_gunzip, parse_push, ServerConfig};

const NOW: f64 = 1_764_100_000.0;

fuzz_target!(|data: &[u8]| {
    let cfg = ServerConfig {
        max_body_bytes: 1 << 20,
        max_points_per_batch: 1_000,
        ..ServerConfig::default()
    };
    let Ok(body) = maybe_gunzip(
        &HeaderMap::new(),
        Bytes::copy_from_slice(data),
        cfg.max_body_bytes,
    ) else {
        return;
    };
    assert!(body.len() <= cfg.max_body_bytes);
    let Ok(parsed) = parse_push(&body, NOW, &cfg) else {
        return;
    };
    let mut seen: Vec<usize> = parsed
        .points
        .iter()
        .map(|(i, _)| *i)
        .chain(parsed.rejected.iter().map(|r| r.index))
        .collect();
    seen.sort_unstable();
    let n = seen.len();
    assert!(seen.iter().copied().eq(0..n), "each point once: {seen:?}");
    for (_, p) in &parsed.points {
        assert!(p.ts.is_finite(), "accepted point with ts {}", p.ts);
        assert!(!p.name.is_empty());
    }
});
