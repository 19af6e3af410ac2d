//! `serve --demo`: app `webshop` (env `production`) with a day of history
//! and live data every 10 s, so a new user sees real charts at once.
//!
//! Metrics: `active_shoppers` (gauge, by region), `order_count` (counter, by
//! region and payment), `invoice_count` (counter, by region) and
//! `order_item_count` (distribution, by region), all following a daily
//! traffic curve that peaks in each region's evening.
//!
//! The first fill also creates the demo dashboards (`demo/*.yaml`, in the
//! same YAML that `minutely dashboards export` writes). `invoice_count` is
//! on none of them, so the automatic dashboard has something to show.

use minutely_core::{DistAgg, Kind, Point, PointValue, Tags};
use minutely_store::{AppRecord, PushRequest, Store, StoreError};
use std::f64::consts::PI;
use std::sync::Arc;

pub const DEMO_APP: &str = "webshop";
pub const DEMO_ENV: &str = "production";
const REGIONS: [(&str, f64, f64); 2] = [("eu", 1.0, 18.0), ("us", 0.7, 24.0)];
const PAYMENTS: [(&str, f64); 2] = [("card", 0.7), ("paypal", 0.3)];
/// Live points are sent this often; a minute gets six shares.
pub const LIVE_TICK_SECS: u64 = 10;

/// Deterministic generator (xorshift64*), so every demo looks alike.
pub struct DemoShop {
    state: u64,
}

impl DemoShop {
    pub fn new(seed: u64) -> Self {
        DemoShop { state: seed.max(1) }
    }

    fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let x = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn poisson(&mut self, lambda: f64) -> u64 {
        // Knuth's method: fine for the small rates of one tick.
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.uniform();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }

    /// Share of peak traffic at `ts` for a region peaking at `peak_hour` UTC.
    fn traffic(ts: f64, peak_hour: f64) -> f64 {
        let hour = (ts / 3_600.0) % 24.0;
        0.15 + 0.85 * (0.5 + 0.5 * (2.0 * PI * (hour - peak_hour) / 24.0).cos())
    }

    /// Points for `share` of the minute (1.0 for a whole minute) at `ts`.
    pub fn points(&mut self, ts: f64, share: f64) -> Vec<Point> {
        let mut out = Vec::new();
        let point = |kind, name: &str, region: &str, extra: Option<(&str, &str)>, value| {
            let mut tags = vec![("region", region)];
            tags.extend(extra);
            Point {
                kind,
                name: name.into(),
                tags: Tags::from_pairs(tags),
                ts,
                value,
            }
        };
        for (region, size, peak) in REGIONS {
            let f = Self::traffic(ts, peak) * size;
            let shoppers = (400.0 * f * (0.95 + 0.1 * self.uniform())).round();
            out.push(point(
                Kind::Gauge,
                "active_shoppers",
                region,
                None,
                PointValue::Single(shoppers),
            ));
            let mut orders_total = 0;
            for (payment, part) in PAYMENTS {
                let orders = self.poisson(12.0 * f * part * share);
                orders_total += orders;
                out.push(point(
                    Kind::Counter,
                    "order_count",
                    region,
                    Some(("payment", payment)),
                    PointValue::Single(orders as f64),
                ));
            }
            let invoices = (0..orders_total).filter(|_| self.uniform() < 0.97).count();
            out.push(point(
                Kind::Counter,
                "invoice_count",
                region,
                None,
                PointValue::Single(invoices as f64),
            ));
            let mut items: Option<DistAgg> = None;
            for _ in 0..orders_total {
                let n = (1.0 + (-self.uniform().ln() * 2.5).floor()).min(60.0);
                match &mut items {
                    Some(d) => d.merge(&DistAgg::single(n)),
                    None => items = Some(DistAgg::single(n)),
                }
            }
            if let Some(d) = items {
                out.push(point(
                    Kind::Distribution,
                    "order_item_count",
                    region,
                    None,
                    PointValue::DistSummary(Box::new(d)),
                ));
            }
        }
        out
    }
}

fn push(store: &dyn Store, points: Vec<Point>) -> Result<(), StoreError> {
    store.push(PushRequest {
        app: DEMO_APP.into(),
        env: DEMO_ENV.into(),
        batch: None,
        points: points.into_iter().enumerate().collect(),
    })?;
    Ok(())
}

/// Creates the demo app and, the first time, a day of history up to `now`.
pub fn backfill(store: &dyn Store, now: f64) -> Result<(), StoreError> {
    if !store.apps()?.iter().any(|a| a.name == DEMO_APP) {
        store.create_app(AppRecord {
            name: DEMO_APP.into(),
            created: now as i64,
        })?;
    }
    if store.metric_kind(DEMO_APP, "active_shoppers").is_some() {
        return Ok(());
    }
    let mut shop = DemoShop::new(7);
    let this_minute = minutely_core::time::minute_of(now);
    let mut batch = Vec::new();
    // 23 h 59 min: the whole history stays inside the late-point window.
    for m in (1..1_440).rev() {
        let ts = (this_minute - m * 60 + 30) as f64;
        batch.extend(shop.points(ts, 1.0));
        if batch.len() >= 5_000 {
            push(store, std::mem::take(&mut batch))?;
        }
    }
    push(store, batch)?;
    create_dashboards(store, now as i64)?;
    store.checkpoint()
}

/// The demo dashboards as YAML definitions.
pub const DEMO_DASHBOARDS: [&str; 2] = [
    include_str!("demo/overview.yaml"),
    include_str!("demo/order_sizes.yaml"),
];

/// Stores the demo dashboards unless the demo app already has dashboards.
pub fn create_dashboards(store: &dyn Store, now: i64) -> Result<(), StoreError> {
    if !store.dashboards(DEMO_APP)?.is_empty() {
        return Ok(());
    }
    for text in DEMO_DASHBOARDS {
        let d = crate::dashboards::model::yaml_value(text.as_bytes())
            .and_then(crate::dashboards::model::from_value)
            .map_err(|e| StoreError::Engine(format!("demo dashboard: {e}")))?;
        crate::dashboards::create(store, DEMO_APP, &d, now)
            .map_err(|e| StoreError::Engine(format!("demo dashboard: {}", e.message)))?;
    }
    Ok(())
}

/// Sends live demo data every [`LIVE_TICK_SECS`] until the task is dropped.
pub async fn run_live(store: Arc<dyn Store>, clock: crate::Clock) {
    let mut shop = DemoShop::new(clock() as u64);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(LIVE_TICK_SECS));
    loop {
        tick.tick().await;
        let points = shop.points(clock(), LIVE_TICK_SECS as f64 / 60.0);
        let store = store.clone();
        let result = tokio::task::spawn_blocking(move || push(store.as_ref(), points)).await;
        if let Ok(Err(e)) = result {
            tracing::warn!("demo push failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_peaks_in_the_regions_evening() {
        let day = 1_764_028_800.0; // a UTC midnight
        assert!(DemoShop::traffic(day + 18.0 * 3_600.0, 18.0) > 0.99);
        assert!(DemoShop::traffic(day + 6.0 * 3_600.0, 18.0) < 0.16);
    }

    #[test]
    fn demo_dashboards_are_valid_and_export_unchanged() {
        for text in DEMO_DASHBOARDS {
            let d = crate::dashboards::model::yaml_value(text.as_bytes())
                .and_then(crate::dashboards::model::from_value)
                .unwrap();
            assert_eq!(crate::dashboards::model::to_yaml(&d).unwrap(), text);
        }
    }

    #[test]
    fn a_minute_has_every_metric() {
        let mut shop = DemoShop::new(1);
        let pts = shop.points(1_764_028_800.0 + 18.0 * 3_600.0, 1.0);
        for name in [
            "active_shoppers",
            "order_count",
            "invoice_count",
            "order_item_count",
        ] {
            assert!(pts.iter().any(|p| *p.name == *name), "{name}");
        }
    }
}
