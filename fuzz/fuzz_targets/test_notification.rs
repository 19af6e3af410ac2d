//! Test-notification bodies (`POST /api/v1/alerts/test-notification`):
//! JSON or YAML naming a channel, or an alert and a channel index. Never
//! panics, and a channel given in the body is checked without panicking.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use minutely_server::alerts::test_notification::parse_request;

fuzz_target!(|data: &[u8]| {
    let ctype = if data.first() == Some(&b'{') {
        "application/json"
    } else {
        "application/yaml"
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    let Ok(req) = parse_request(&headers, data) else {
        return;
    };
    if let Some(c) = &req.channel {
        let _ = c.validate();
        let _ = c.kind();
    }
});
