//! The process-wide client: free functions, probes and the installed
//! `metrics` recorder (its own test binary, since both are global).

mod common;

use common::Server;
use minutely_client::{add_distribution_value, increment_counter, probes, set_gauge, StartError};
use std::time::Duration;

#[test]
fn free_functions_and_the_installed_recorder_land() {
    let server = Server::start();
    // Recorded before start: kept and pushed with the first push.
    increment_counter("early_count", 2.0, &[]);
    server
        .config()
        .probe_interval(Duration::from_millis(100))
        .install()
        .unwrap();
    assert!(matches!(
        minutely_client::start(server.config().build().unwrap()),
        Err(StartError::AlreadyStarted)
    ));
    probes::register("gauge_probe", || set_gauge("probe_gauge", 42.0, &[]));
    increment_counter("early_count", 3.0, &[]);
    add_distribution_value("global_dist", 5.0, &[]);
    metrics::counter!("global_rec", "via" => "facade").increment(6);
    metrics::gauge!("global_level").set(1.5);
    std::thread::sleep(Duration::from_millis(400));
    assert!(probes::unregister("gauge_probe"));
    assert!(minutely_client::flush(Duration::from_secs(20)));

    assert_eq!(server.value("early_count", "sum", &[]), Some(5.0));
    assert_eq!(server.value("global_dist", "count", &[]), Some(1.0));
    assert_eq!(
        server.value("global_rec", "sum", &[("via", "facade")]),
        Some(6.0)
    );
    assert_eq!(server.value("global_level", "last", &[]), Some(1.5));
    assert_eq!(server.value("probe_gauge", "last", &[]), Some(42.0));
    assert!(minutely_client::shutdown(Duration::from_secs(5)));
    assert_eq!(minutely_client::global().stats().points_rejected, 0);
}
