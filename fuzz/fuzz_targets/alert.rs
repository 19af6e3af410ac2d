//! Alert definitions (`POST /api/v1/alerts`, `PUT /api/v1/alerts/{id}`,
//! `POST /api/v1/alerts/preview`): JSON or YAML, then the checks of
//! `AlertDef::validate`. Never panics; an accepted alert, stored as JSON or
//! exported as YAML, reads back the same.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use minutely_server::alerts::api::parse_body;

fn typed(ctype: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h
}

fuzz_target!(|data: &[u8]| {
    let ctype = if data.first() == Some(&b'{') {
        "application/json"
    } else {
        "application/yaml"
    };
    let Ok(mut def) = parse_body(&typed(ctype), data, "shop") else {
        return;
    };
    // What notifications and the evaluator derive from an accepted alert.
    let _ = def.condition.describe();
    let _ = def.condition.lookback_minutes();
    let _ = def.filters();
    for c in &def.channels {
        c.validate().expect("an accepted alert has valid channels");
    }
    // Stored without its app, as the API does.
    def.app = None;
    let json = serde_json::to_vec(&def).expect("an accepted alert serialises");
    let back =
        parse_body(&typed("application/json"), &json, "shop").expect("stored form reads back");
    assert_eq!(back, def, "round trip through JSON");
    let yaml = serde_norway::to_string(&def).expect("an accepted alert exports");
    let back = parse_body(&typed("application/yaml"), yaml.as_bytes(), "shop")
        .expect("its export reads back");
    assert_eq!(back, def, "round trip through {yaml}");
});
