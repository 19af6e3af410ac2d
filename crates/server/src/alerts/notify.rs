//! Notifications: the payload of an open, reminder or close, the outbox
//! sender with retries and exponential backoff, and the channels (webhook
//! signed with HMAC-SHA256, Slack-compatible webhook, email over SMTP).
//!
//! Delivery is at least once with a stable id: an entry leaves the outbox
//! only after its channel accepted it, so a crash between sending and
//! forgetting can repeat one delivery; receivers dedupe by the
//! `X-Minutely-Delivery` header (the payload's `notification_id`).

use super::Runtime;
use hmac::{Hmac, Mac};
use minutely_alerts::Channel;
use minutely_store::{OutboxEntry, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// Attempts before a notification is given up (logged and counted): with
/// the backoff below, about a day of retrying.
pub const MAX_ATTEMPTS: u32 = 30;
/// Backoff after the first failure; doubles per attempt up to the cap.
const BACKOFF_BASE_SECS: i64 = 1;
const BACKOFF_CAP_SECS: i64 = 3_600;
/// One delivery may take this long before it counts as failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the outbox keeps per notification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queued {
    pub channel: Channel,
    /// The webhook JSON (also the source of the Slack text and the email).
    pub payload: Value,
}

/// Seconds to wait after `attempts` failures.
pub fn backoff(attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(20);
    (BACKOFF_BASE_SECS << exp).min(BACKOFF_CAP_SECS)
}

/// Hex HMAC-SHA256 of `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One line for chat and the email subject.
pub fn headline(p: &Value) -> String {
    if p["event"] == "test" {
        // No values, maybe no metric: say what it is.
        return format!(
            "[TEST] {}: a test notification from minutely (app={}); no incident is open",
            p["alert"].as_str().unwrap_or(""),
            p["app"].as_str().unwrap_or(""),
        );
    }
    let what = match p["event"].as_str() {
        Some("open") => "OPEN",
        Some("reminder") => "STILL OPEN",
        _ => "CLOSED",
    };
    let tags = p["tags"]
        .as_object()
        .map(|t| {
            t.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let value = match (p["no_data"].as_bool(), p["last"].as_f64()) {
        (Some(true), None) => "no data".to_string(),
        (_, Some(v)) => format!("last {v}"),
        _ => "no value".to_string(),
    };
    format!(
        "[{what}] {}: {} {} {} ({value}) app={} env={} {tags}",
        p["alert"].as_str().unwrap_or(""),
        p["metric"].as_str().unwrap_or(""),
        p["field"].as_str().unwrap_or(""),
        p["condition_text"].as_str().unwrap_or(""),
        p["app"].as_str().unwrap_or(""),
        p["env"].as_str().unwrap_or(""),
    )
    .trim_end()
    .to_string()
}

fn text_body(p: &Value) -> String {
    let num = |k: &str| p[k].as_f64().map_or("-".into(), |v| v.to_string());
    let time = |k: &str| {
        p[k].as_i64()
            .map_or("-".into(), minutely_core::timeparse::format_rfc3339)
    };
    format!(
        "{}\n\nlast: {}\npeak: {}\nmean: {}\nopened: {}\nclosed: {}\n\n{}\n{}\n",
        headline(p),
        num("last"),
        num("peak"),
        num("mean"),
        time("opened_at"),
        time("closed_at"),
        p["description"].as_str().unwrap_or(""),
        p["link"].as_str().unwrap_or(""),
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_body(p: &Value) -> String {
    let rows: String = text_body(p)
        .lines()
        .skip(2)
        .filter(|l| !l.is_empty())
        .map(|l| format!("<tr><td>{}</td></tr>", html_escape(l)))
        .collect();
    format!(
        "<html><body><h3>{}</h3><table>{rows}</table></body></html>",
        html_escape(&headline(p))
    )
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(SEND_TIMEOUT).build()
}

fn post_json(url: &str, body: &[u8], headers: &[(&str, String)]) -> Result<(), String> {
    let mut req = agent().post(url).set("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(body) {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, _)) => Err(format!("{url} answered {code}")),
        // The transport error names the URL already.
        Err(e) => Err(e.to_string()),
    }
}

/// Delivers one notification (blocking).
pub fn deliver(rt: &Runtime, id: u64, q: &Queued) -> Result<(), String> {
    match &q.channel {
        Channel::Webhook { url, secret } => {
            let body = serde_json::to_vec(&q.payload).map_err(|e| e.to_string())?;
            let mut headers = vec![("X-Minutely-Delivery", id.to_string())];
            if let Some(s) = secret {
                headers.push((
                    "X-Minutely-Signature",
                    format!("sha256={}", signature(s, &body)),
                ));
            }
            post_json(url, &body, &headers)
        }
        Channel::Slack { url } => {
            let p = &q.payload;
            let text = match p["link"].as_str() {
                Some(link) if !link.is_empty() => format!("{} <{link}|graph>", headline(p)),
                _ => headline(p),
            };
            let body = serde_json::to_vec(&serde_json::json!({ "text": text }))
                .map_err(|e| e.to_string())?;
            post_json(url, &body, &[])
        }
        Channel::Email { to } => {
            let smtp = rt.cfg.smtp.as_ref().ok_or(
                "no SMTP server is configured (--smtp-host); the email cannot be sent".to_string(),
            )?;
            super::email::send(
                smtp,
                to,
                &headline(&q.payload),
                &text_body(&q.payload),
                &html_body(&q.payload),
            )
        }
    }
}

/// One round of the sender: every due entry is tried once.
pub fn send_due(store: &dyn Store, rt: &Runtime, now: i64) {
    let entries = match store.outbox() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("alerts: reading the outbox failed: {e}");
            return;
        }
    };
    rt.pending
        .store(entries.len() as u64, std::sync::atomic::Ordering::Relaxed);
    for mut entry in entries.into_iter().filter(|e| e.due <= now) {
        let q: Queued = match serde_json::from_str(&entry.body) {
            Ok(q) => q,
            Err(e) => {
                tracing::error!("alerts: dropping unreadable notification {}: {e}", entry.id);
                let _ = store.remove_outbox(entry.id);
                continue;
            }
        };
        let kind = q.channel.kind();
        match deliver(rt, entry.id, &q) {
            Ok(()) => {
                rt.count(kind, "sent");
                if let Err(e) = store.remove_outbox(entry.id) {
                    tracing::error!("alerts: notification {} was sent but could not be forgotten (it may be sent again): {e}", entry.id);
                }
            }
            Err(err) => {
                rt.count(kind, "failed");
                entry.attempts += 1;
                if entry.attempts >= MAX_ATTEMPTS {
                    rt.count(kind, "dropped");
                    tracing::error!(
                        "alerts: giving up {kind} notification {} after {} attempts: {err}",
                        entry.id,
                        entry.attempts
                    );
                    let _ = store.remove_outbox(entry.id);
                    continue;
                }
                entry.due = now + backoff(entry.attempts);
                tracing::warn!(
                    "alerts: {kind} notification {} failed (attempt {}), retrying in {} s: {err}",
                    entry.id,
                    entry.attempts,
                    entry.due - now
                );
                entry.last_error = Some(err);
                if let Err(e) = store.update_outbox(entry) {
                    tracing::error!("alerts: saving a failed attempt failed: {e}");
                }
            }
        }
    }
}

/// The sender task: a round every second, or sooner when a pass queued
/// notifications.
pub async fn sender(store: Arc<dyn Store>, rt: Arc<Runtime>, clock: crate::Clock) {
    loop {
        let (s, r, now) = (store.clone(), rt.clone(), clock() as i64);
        let _ = tokio::task::spawn_blocking(move || send_due(s.as_ref(), &r, now)).await;
        tokio::select! {
            _ = rt.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The failed entries waiting for a retry, for the API.
pub fn pending_view(entries: &[OutboxEntry]) -> Vec<Value> {
    entries
        .iter()
        .map(|e| {
            let q: Option<Queued> = serde_json::from_str(&e.body).ok();
            serde_json::json!({
                "id": e.id,
                "channel": q.as_ref().map(|q| q.channel.kind()),
                "alert_id": q.as_ref().map(|q| q.payload["alert_id"].clone()),
                "event": q.as_ref().map(|q| q.payload["event"].clone()),
                "attempts": e.attempts,
                "due": e.due,
                "last_error": e.last_error,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(
            (1..=5).map(backoff).collect::<Vec<_>>(),
            vec![1, 2, 4, 8, 16]
        );
        assert_eq!(backoff(30), 3_600);
    }

    #[test]
    fn headlines_read_well() {
        let p = serde_json::json!({"event": "open", "alert": "orders stopped", "metric": "order_count",
            "field": "sum", "condition_text": "< 1", "last": 0.0, "app": "shop", "env": "production",
            "tags": {"region": "eu"}});
        assert_eq!(
            headline(&p),
            "[OPEN] orders stopped: order_count sum < 1 (last 0) app=shop env=production region=eu"
        );
        assert!(html_body(&p).contains("<h3>[OPEN] orders stopped"));
        let t = serde_json::json!({"event": "test", "alert": "orders stopped", "app": "shop", "metric": null});
        assert_eq!(
            headline(&t),
            "[TEST] orders stopped: a test notification from minutely (app=shop); no incident is open"
        );
    }
}
