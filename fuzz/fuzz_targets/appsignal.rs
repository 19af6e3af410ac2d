//! AppSignal dashboard imports (`minutely dashboards import`,
//! `POST /api/v1/dashboards`): the JSON export and the older YAML, each
//! mapped straight from the parsed document (not only when its shape is
//! recognised, so the mapping sees odd documents too). Never panics; an
//! imported dashboard exports as native YAML and reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minutely_server::dashboards::{appsignal, model};

fn round_trips(d: &model::Dashboard) {
    let yaml = model::to_yaml(d).expect("an imported dashboard exports");
    let v = model::yaml_value(yaml.as_bytes()).expect("its export is YAML");
    let back = model::from_value(v).expect("its export reads back");
    assert_eq!(&back, d, "round trip through {yaml}");
}

fuzz_target!(|data: &[u8]| {
    let value = if data.first() == Some(&b'{') {
        serde_json::from_slice(data).ok()
    } else {
        model::yaml_value(data).ok()
    };
    let Some(value) = value else {
        return;
    };
    if let Ok(d) = appsignal::from_json(&value) {
        round_trips(&d);
    }
    if let Ok(d) = appsignal::from_old_yaml(&value) {
        round_trips(&d);
    }
    if let Ok(appsignal::Detected::AppSignal(d)) = appsignal::detect(value) {
        round_trips(&d);
    }
});
