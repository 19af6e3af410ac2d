//! A pretend web shop that records its numbers in minutely for a minute or
//! two. Start a server (`cargo run -p minutely -- serve`), then:
//!
//! ```sh
//! MINUTELY_PUSH_KEY=... cargo run -p minutely-client --example webshop
//! ```
//!
//! It uses the helpers, a probe and the `metrics` facade, and pushes every
//! 10 s; query e.g. `minutely query order_item_count --field p95 --from -10m`.

use minutely_client::{add_distribution_value, increment_counter, probes, set_gauge, Builder};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Reads MINUTELY_ENDPOINT, MINUTELY_PUSH_KEY and MINUTELY_ENV, starts
    // the global client and installs its `metrics` recorder.
    Builder::from_env().install()?;

    let carts = Arc::new(AtomicU64::new(0));
    let c = carts.clone();
    // Probes run at the start of every minute.
    probes::register("active_carts", move || {
        set_gauge("active_carts", c.load(Ordering::Relaxed) as f64, &[]);
    });

    let page_views = metrics::counter!("page_views", "page" => "home");
    let mut seed = 42u64;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for second in 0..120 {
        for _ in 0..random(50) {
            page_views.increment(1);
        }
        carts.store(20 + random(10), Ordering::Relaxed);
        let region = if random(2) == 0 { "eu" } else { "us" };
        set_gauge(
            "active_shoppers",
            (100 + random(40)) as f64,
            &[("region", region)],
        );
        for _ in 0..random(5) {
            increment_counter("invoice_count", 1.0, &[("region", region)]);
            add_distribution_value(
                "order_item_count",
                (1 + random(9)) as f64,
                &[("region", region)],
            );
            metrics::histogram!("checkout_seconds").record(0.2 + random(300) as f64 / 100.0);
        }
        if second % 10 == 0 {
            println!("{second} s: {:?}", minutely_client::global().stats());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // Push the last seconds before exiting.
    let delivered = minutely_client::shutdown(Duration::from_secs(10));
    println!("delivered everything: {delivered}");
    Ok(())
}
