//! Alerts (DESIGN section 5): the evaluator that runs once per closed
//! minute, its persisted passes, and the outbox sender. The HTTP API is in
//! [`api`]; the pure model and state machine in `minutely-alerts`.
//!
//! A pass of one alert evaluates every minute after its cursor up to the
//! newest closed minute (`now - grace`, floored, minus one minute), then
//! commits the new state, the incidents it touched and the notifications
//! it owes in one transaction: a restart goes on from the cursor, so no
//! incident opens twice and no close is lost.

pub mod api;
pub mod email;
pub mod eval;
pub mod notify;
pub mod test_notification;

use minutely_alerts::{AlertDef, AlertState, EventKind};
use minutely_store::{AlertPass, AlertRecord, IncidentRecord, Store};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use email::{SmtpConfig, SmtpTls};

/// Minutes one pass evaluates at most: a server that was down longer skips
/// ahead instead of replaying days (and notifying long-past incidents).
pub const MAX_CATCH_UP_MINUTES: i64 = 24 * 60;

/// Where the evaluator's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlertsClock {
    /// The server's clock: a pass shortly after every minute closes.
    #[default]
    System,
    /// Only `POST /api/v1/alerts/evaluate?to=` moves evaluation on (tests).
    Manual,
}

#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Whether this server evaluates alerts (one server of a scale-out does).
    pub evaluate: bool,
    /// Whether this server delivers queued notifications. Over a shared
    /// store only the evaluating server does, so each is sent once.
    pub send: bool,
    /// Seconds after a minute closes before it is evaluated (late pushes).
    pub grace_secs: i64,
    pub clock: AlertsClock,
    /// Base of the links in notifications, e.g. `https://metrics.example.com`.
    pub public_url: Option<String>,
    pub smtp: Option<SmtpConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            evaluate: true,
            send: true,
            // DESIGN section 5: a short grace for late pushes; clients push
            // every 10 s, so 15 s sees the last push of a minute.
            grace_secs: 15,
            clock: AlertsClock::System,
            public_url: None,
            smtp: None,
        }
    }
}

/// The alerting runtime shared by the API and the background tasks.
#[derive(Default)]
pub struct Runtime {
    pub cfg: AlertsConfig,
    /// One pass at a time (the loop and the manual endpoint).
    pass_lock: Mutex<()>,
    /// Wakes the sender when a pass queued notifications.
    pub wake: tokio::sync::Notify,
    /// Notifications in the outbox at the last sender round.
    pub pending: AtomicU64,
    /// (channel kind, outcome) -> count, for `/metrics`.
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    pub evaluated_minutes: AtomicU64,
    pub incidents_opened: AtomicU64,
    pub eval_failures: AtomicU64,
}

impl Runtime {
    pub fn new(cfg: AlertsConfig) -> Runtime {
        Runtime {
            cfg,
            ..Default::default()
        }
    }

    pub fn count(&self, channel: &'static str, outcome: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((channel, outcome))
            .or_default() += 1;
    }

    /// Prometheus text of the alerting counters.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "# HELP minutely_alert_notifications_total Notification delivery attempts by channel and outcome (sent, failed, dropped after the last retry).\n# TYPE minutely_alert_notifications_total counter");
        for ((channel, outcome), n) in counts.iter() {
            let _ = writeln!(
                out,
                "minutely_alert_notifications_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        for (name, help, kind, v) in [
            (
                "minutely_alert_outbox_pending",
                "Notifications waiting in the outbox (at the last sender round).",
                "gauge",
                self.pending.load(Ordering::Relaxed),
            ),
            (
                "minutely_alert_minutes_evaluated_total",
                "Alert-minutes evaluated.",
                "counter",
                self.evaluated_minutes.load(Ordering::Relaxed),
            ),
            (
                "minutely_alert_incidents_opened_total",
                "Incidents opened.",
                "counter",
                self.incidents_opened.load(Ordering::Relaxed),
            ),
            (
                "minutely_alert_evaluation_failures_total",
                "Alert passes that failed (bad definition or storage error).",
                "counter",
                self.eval_failures.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

/// The API's incident JSON.
#[allow(clippy::too_many_arguments)]
pub fn incident_json(
    app: &str,
    alert_id: &str,
    def: &AlertDef,
    env: &str,
    tags: &minutely_core::Tags,
    inc: &minutely_alerts::Incident,
) -> Value {
    json!({
        "id": inc.id,
        "alert_id": alert_id,
        "alert": def.name,
        "app": app,
        "env": env,
        "metric": def.metric,
        "field": def.field,
        "tags": tags,
        "state": if inc.closed_at.is_some() { "closed" } else { "open" },
        "started_at": inc.started_at,
        "opened_at": inc.opened_at,
        "closed_at": inc.closed_at,
        "last": inc.last,
        "peak": inc.peak,
        "mean": inc.mean(),
        "no_data": inc.no_data,
    })
}

fn link(cfg: &AlertsConfig, app: &str, def: &AlertDef, inc: &minutely_alerts::Incident) -> String {
    let Some(base) = &cfg.public_url else {
        return String::new();
    };
    let from = inc.started_at - 3_600;
    let to = inc.closed_at.map_or(inc.opened_at, |c| c) + 3_600;
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("app", app)
        .append_pair("metric", &def.metric)
        .append_pair("from", &from.to_string())
        .append_pair("to", &to.to_string())
        .finish();
    format!("{}/#/explore?{q}", base.trim_end_matches('/'))
}

/// Runs one pass of one alert over `[first, last]` and commits it.
/// Returns how many notifications were queued.
pub fn pass(
    store: &dyn Store,
    rt: &Runtime,
    rec: &AlertRecord,
    first: Option<i64>,
    last: i64,
    now: i64,
) -> Result<usize, String> {
    let def: AlertDef =
        serde_json::from_str(&rec.body).map_err(|e| format!("bad alert {}: {e}", rec.id))?;
    if !def.enabled {
        return Ok(0);
    }
    let mut state: AlertState = match store.alert_state(&rec.app, &rec.id) {
        Ok(Some(s)) => serde_json::from_str(&s).unwrap_or_default(),
        Ok(None) => AlertState::default(),
        Err(e) => return Err(e.to_string()),
    };
    let start = match state.cursor {
        Some(c) => c + 60,
        None => first.unwrap_or(last),
    };
    let start = start.max(last - (MAX_CATCH_UP_MINUTES - 1) * 60);
    if start > last {
        return Ok(0);
    }
    let events = eval::run_minutes(store, &rec.app, &rec.id, &def, &mut state, start, last)?;
    rt.evaluated_minutes
        .fetch_add(((last - start) / 60 + 1) as u64, Ordering::Relaxed);
    let mut incidents = Vec::new();
    let mut notifications = Vec::new();
    for se in &events {
        let inc = &se.event.incident;
        let mut body = incident_json(&rec.app, &rec.id, &def, &se.env, &se.tags, inc);
        incidents.push(IncidentRecord {
            app: rec.app.clone(),
            id: inc.id.clone(),
            alert_id: rec.id.clone(),
            opened_at: inc.opened_at,
            closed_at: inc.closed_at,
            body: body.to_string(),
        });
        if se.event.kind == EventKind::Open {
            rt.incidents_opened.fetch_add(1, Ordering::Relaxed);
        }
        body["event"] = se.event.kind.as_str().into();
        body["evaluated_minute"] = se.event.minute.into();
        body["condition"] = serde_json::to_value(&def.condition).unwrap_or_default();
        body["condition_text"] = def.condition.describe().into();
        body["description"] = def.description.clone().into();
        body["link"] = link(&rt.cfg, &rec.app, &def, inc).into();
        for channel in &def.channels {
            let q = notify::Queued {
                channel: channel.clone(),
                payload: body.clone(),
            };
            notifications.push(serde_json::to_string(&q).map_err(|e| e.to_string())?);
        }
    }
    // Open incidents keep their latest values in the history.
    for (key, s) in &state.series {
        if let (Some(inc), minutely_alerts::Phase::Open | minutely_alerts::Phase::CoolingDown) =
            (&s.incident, s.phase)
        {
            if incidents.iter().any(|i| i.id == inc.id) {
                continue;
            }
            let (env, tags) = eval::parse_series_key(key);
            incidents.push(IncidentRecord {
                app: rec.app.clone(),
                id: inc.id.clone(),
                alert_id: rec.id.clone(),
                opened_at: inc.opened_at,
                closed_at: None,
                body: incident_json(&rec.app, &rec.id, &def, &env, &tags, inc).to_string(),
            });
        }
    }
    let queued = notifications.len();
    store
        .commit_alert_pass(AlertPass {
            app: rec.app.clone(),
            alert_id: rec.id.clone(),
            state: serde_json::to_string(&state).map_err(|e| e.to_string())?,
            incidents,
            notifications,
            now,
        })
        .map_err(|e| e.to_string())?;
    Ok(queued)
}

/// Evaluates every alert of every app through the minute starting at
/// `last` (blocking). `first` is where an alert never evaluated starts
/// (default: `last`).
pub fn evaluate_all(
    store: &dyn Store,
    rt: &Runtime,
    first: Option<i64>,
    last: i64,
    now: i64,
) -> usize {
    let _one = rt.pass_lock.lock().unwrap_or_else(|p| p.into_inner());
    let alerts = match store.alerts(None) {
        Ok(a) => a,
        Err(e) => {
            rt.eval_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!("alerts: listing alerts failed: {e}");
            return 0;
        }
    };
    let mut queued = 0;
    for rec in &alerts {
        match pass(store, rt, rec, first, last, now) {
            Ok(n) => queued += n,
            Err(e) => {
                rt.eval_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("alerts: evaluating {}/{} failed: {e}", rec.app, rec.id);
            }
        }
    }
    if queued > 0 {
        rt.wake.notify_one();
    }
    queued
}

/// The newest closed minute at `now` with the grace.
pub fn last_closed_minute(now: i64, grace: i64) -> i64 {
    minutely_core::time::floor_to(now - grace, 60) - 60
}

/// The evaluator task: sleeps until the next minute plus grace, evaluates,
/// and prunes incident history past the minute retention once an hour.
pub async fn evaluator(store: Arc<dyn Store>, rt: Arc<Runtime>, clock: crate::Clock) {
    let mut last_prune = 0i64;
    loop {
        let now = clock();
        let next = (((now as i64 - rt.cfg.grace_secs) / 60) + 1) * 60 + rt.cfg.grace_secs;
        let wait = (next as f64 - now).clamp(0.05, 61.0);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        let now = clock() as i64;
        let last = last_closed_minute(now, rt.cfg.grace_secs);
        let (s, r) = (store.clone(), rt.clone());
        let prune = now - last_prune >= 3_600;
        if prune {
            last_prune = now;
        }
        let _ = tokio::task::spawn_blocking(move || {
            evaluate_all(s.as_ref(), &r, None, last, now);
            if prune {
                if let Some(days) = s.retention().minute_days {
                    if let Err(e) = s.prune_incidents(now - days as i64 * 86_400) {
                        tracing::warn!("alerts: pruning incident history failed: {e}");
                    }
                }
            }
        })
        .await;
    }
}

/// Starts the evaluator (when this server evaluates on its own clock) and
/// the outbox sender (always: notifications queued before a restart go out).
pub fn start(state: &crate::Shared) -> Vec<tokio::task::JoinHandle<()>> {
    let rt = state.alerts.clone();
    let mut tasks = Vec::new();
    if rt.cfg.evaluate && rt.cfg.clock == AlertsClock::System {
        tasks.push(tokio::spawn(evaluator(
            state.store.clone(),
            rt.clone(),
            state.clock.clone(),
        )));
    }
    if rt.cfg.send {
        tasks.push(tokio::spawn(notify::sender(
            state.store.clone(),
            rt,
            state.clock.clone(),
        )));
    }
    tasks
}
