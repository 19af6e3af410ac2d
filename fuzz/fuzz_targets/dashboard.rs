//! Dashboard definitions (`POST /api/v1/dashboards`, `minutely dashboards
//! import`): YAML (native, or AppSignal's older YAML) or JSON (native or
//! AppSignal's export). Never panics; an accepted dashboard exported as
//! YAML reads back the same.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use minutely_server::dashboards::{model, parse_body};

fuzz_target!(|data: &[u8]| {
    let ctype = if data.first() == Some(&b'{') {
        "application/json"
    } else {
        "application/yaml"
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    let Ok(d) = parse_body(&headers, data) else {
        return;
    };
    let yaml = model::to_yaml(&d).expect("an accepted dashboard exports");
    let mut yh = HeaderMap::new();
    yh.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    let back = parse_body(&yh, yaml.as_bytes()).expect("its export reads back");
    assert_eq!(back, d, "round trip through {yaml}");
});
