//! Alerts end to end: points pushed for past minutes, evaluation driven
//! through them with `--alerts-clock manual`, and a real webhook receiver
//! that checks what arrives (values, signature, exactly once, also across
//! a SIGKILL before delivery).

mod common;

use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got: headers (lower-case names), body, and the
/// status it answered.
#[derive(Debug, Clone)]
struct Hit {
    headers: Vec<(String, String)>,
    body: Value,
    status: u16,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Hits = Arc<Mutex<Vec<(Hit, Vec<u8>)>>>;

/// A minimal HTTP/1.1 receiver on a free port answering `status`.
struct Receiver {
    url: String,
    hits: Hits,
    status: Arc<AtomicU16>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let (h, s) = (hits.clone(), status.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut headers = Vec::new();
                let mut len = 0;
                loop {
                    let mut l = String::new();
                    reader.read_line(&mut l).unwrap_or(0);
                    let l = l.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                        if k == "content-length" {
                            len = v.parse().unwrap_or(0);
                        }
                        headers.push((k, v));
                    }
                }
                let mut raw = vec![0; len];
                let _ = reader.read_exact(&mut raw);
                let code = s.load(Ordering::SeqCst);
                let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                h.lock().unwrap().push((
                    Hit {
                        headers,
                        body,
                        status: code,
                    },
                    raw,
                ));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver { url, hits, status }
    }

    /// Requests answered 2xx.
    fn accepted(&self) -> Vec<(Hit, Vec<u8>)> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, _)| h.status < 300)
            .cloned()
            .collect()
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

const SECRET: &str = "s3cret";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// order_count in region eu: 5 per minute for minutes 0-4, nothing in 5-7,
/// 3 per minute in 8-9.
fn push_orders(s: &Server, t0: i64) {
    let mut points = Vec::new();
    for m in (0..5).chain(8..10) {
        let v = if m < 5 { 5 } else { 3 };
        points.push(json!({"kind": "counter", "name": "order_count", "value": v,
            "tags": {"region": "eu"}, "ts": t0 + m * 60 + 10}));
    }
    let (code, answer) = s.push(&json!({"env": "production", "points": points}));
    assert_eq!(code, 200, "{answer}");
}

fn orders_stopped(url: &str) -> Value {
    json!({"name": "orders stopped", "env": "production",
        "metric": "order_count", "field": "sum", "tags": {"region": "*"},
        "condition": {"op": "<", "threshold": 1},
        "warmup_minutes": 2, "cooldown_minutes": 1, "no_data": "zero",
        "channels": [{"type": "webhook", "url": url, "secret": SECRET}]})
}

fn evaluate(s: &Server, from: i64, to: i64) -> Value {
    let (code, v) = s.request(
        "POST",
        &format!("/api/v1/alerts/evaluate?from={from}&to={to}"),
        ADMIN_KEY,
        None,
    );
    assert_eq!(code, 200, "{v}");
    v
}

fn check_signed(hit: &Hit, raw: &[u8]) {
    assert_eq!(hit.header("x-minutely-signature"), Some(sign(raw).as_str()));
}

#[test]
fn webhook_gets_exactly_one_open_and_one_close_with_values_and_signature() {
    let rx = Receiver::start(200);
    let s = Server::start_with(&["--alerts-clock", "manual", "--statsd", "off"]);
    let t0 = past_hour();
    push_orders(&s, t0);

    // Preview over the stored minutes: the incident the alert would open.
    let (code, prev) = s.request(
        "POST",
        &format!("/api/v1/alerts/preview?from={t0}&to={}", t0 + 600),
        ADMIN_KEY,
        Some(&orders_stopped(&rx.url)),
    );
    assert_eq!(code, 200, "{prev}");
    assert_eq!(
        prev["incidents"],
        json!([{"tags": {"region": "eu"}, "env": "production", "opened_at": t0 + 360,
            "closed_at": t0 + 480, "peak": 0.0, "last": 3.0, "mean": 0.75, "no_data": false}])
    );
    // From two hours before the series existed: those minutes are not
    // "no orders", so the same single incident.
    let (code, earlier) = s.request(
        "POST",
        &format!("/api/v1/alerts/preview?from={}&to={}", t0 - 7_200, t0 + 600),
        ADMIN_KEY,
        Some(&orders_stopped(&rx.url)),
    );
    assert_eq!(code, 200, "{earlier}");
    assert_eq!(earlier["incidents"], prev["incidents"]);
    assert!(
        rx.hits.lock().unwrap().is_empty(),
        "a preview sends nothing"
    );

    let (code, created) = s.request(
        "POST",
        "/api/v1/alerts",
        ADMIN_KEY,
        Some(&orders_stopped(&rx.url)),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["id"], "orders-stopped");

    // Minutes 0-6: the warm-up (5, 6) completes at minute 6.
    assert_eq!(evaluate(&s, t0, t0 + 420)["notifications_queued"], 1);
    rx.wait_for("the open notification", |r| r.accepted().len() == 1);
    let (hit, raw) = rx.accepted()[0].clone();
    check_signed(&hit, &raw);
    let b = &hit.body;
    assert_eq!(b["event"], "open");
    assert_eq!(b["state"], "open");
    assert_eq!(b["alert_id"], "orders-stopped");
    assert_eq!(b["app"], "default");
    assert_eq!(b["env"], "production");
    assert_eq!(b["metric"], "order_count");
    assert_eq!(b["field"], "sum");
    assert_eq!(b["tags"], json!({"region": "eu"}));
    assert_eq!(b["condition"], json!({"op": "<", "threshold": 1.0}));
    assert_eq!(
        (
            b["opened_at"].as_i64(),
            b["closed_at"].clone(),
            b["peak"].as_f64(),
            b["last"].as_f64()
        ),
        (Some(t0 + 360), Value::Null, Some(0.0), Some(0.0))
    );
    let (_, open) = s.request("GET", "/api/v1/incidents?state=open", ADMIN_KEY, None);
    assert_eq!(open["incidents"].as_array().unwrap().len(), 1, "{open}");

    // Minutes 7-9: data again at 8 closes it (cool-down 1).
    assert_eq!(evaluate(&s, t0, t0 + 600)["notifications_queued"], 1);
    rx.wait_for("the close notification", |r| r.accepted().len() == 2);
    let (hit, raw) = rx.accepted()[1].clone();
    check_signed(&hit, &raw);
    assert_eq!(hit.body["event"], "close");
    assert_eq!(hit.body["state"], "closed");
    assert_eq!(hit.body["closed_at"].as_i64(), Some(t0 + 480));
    assert_eq!(hit.body["last"].as_f64(), Some(3.0));
    assert_eq!(hit.body["mean"].as_f64(), Some(0.75));

    // Evaluating the same minutes again sends nothing.
    assert_eq!(evaluate(&s, t0, t0 + 600)["notifications_queued"], 0);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(rx.hits.lock().unwrap().len(), 2);
    let (_, closed) = s.request("GET", "/api/v1/incidents?state=closed", ADMIN_KEY, None);
    let list = closed["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{closed}");
    // A time range keeps the incidents open at some time in it.
    let count = |from: i64, to: i64| {
        let (code, v) = s.request(
            "GET",
            &format!("/api/v1/incidents?from={from}&to={to}"),
            ADMIN_KEY,
            None,
        );
        assert_eq!(code, 200, "{v}");
        v["incidents"].as_array().unwrap().len()
    };
    assert_eq!(count(t0, t0 + 360), 0, "ends before it opened");
    assert_eq!(count(t0, t0 + 420), 1);
    assert_eq!(count(t0 + 480, t0 + 600), 1, "starts as it closed");
    assert_eq!(count(t0 + 540, t0 + 600), 0);
    assert_eq!(list[0]["peak"].as_f64(), Some(0.0));
    let metrics = s.get_text("/metrics");
    assert!(metrics
        .contains("minutely_alert_notifications_total{channel=\"webhook\",outcome=\"sent\"} 2"));
}

#[test]
fn sigkill_before_delivery_still_delivers_exactly_once() {
    let rx = Receiver::start(503);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let flags = ["--alerts-clock", "manual", "--statsd", "off"];
    let mut s = Server::start_in(&dir, &flags);
    let t0 = past_hour();
    push_orders(&s, t0);
    let (code, v) = s.request(
        "PUT",
        "/api/v1/alerts/orders",
        ADMIN_KEY,
        Some(&orders_stopped(&rx.url)),
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(evaluate(&s, t0, t0 + 420)["notifications_queued"], 1);
    // The receiver refuses: the notification stays in the outbox.
    rx.wait_for("a refused attempt", |r| !r.hits.lock().unwrap().is_empty());
    // The server counts the failure once it has read the 503: wait for it.
    let failed = "minutely_alert_notifications_total{channel=\"webhook\",outcome=\"failed\"}";
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = s.get_text("/metrics");
        if metrics.contains(failed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metrics.contains(failed), "{metrics}");
    s.kill9();

    rx.status.store(200, Ordering::SeqCst);
    let s = Server::start_in(&dir, &flags);
    rx.wait_for("the open notification after restart", |r| {
        r.accepted().len() == 1
    });
    let first_id = rx.accepted()[0]
        .0
        .header("x-minutely-delivery")
        .map(String::from);
    // No second open: the restarted server goes on from the saved cursor.
    assert_eq!(evaluate(&s, t0, t0 + 420)["notifications_queued"], 0);
    assert_eq!(evaluate(&s, t0, t0 + 600)["notifications_queued"], 1);
    rx.wait_for("the close notification", |r| r.accepted().len() == 2);
    std::thread::sleep(Duration::from_millis(1_500));
    let accepted = rx.accepted();
    assert_eq!(accepted.len(), 2);
    assert_eq!(accepted[0].0.body["event"], "open");
    assert_eq!(accepted[1].0.body["event"], "close");
    assert_eq!(accepted[0].0.body["incident_id"], Value::Null);
    assert_eq!(accepted[0].0.body["id"], accepted[1].0.body["id"]);
    assert_ne!(
        first_id.as_deref(),
        accepted[1].0.header("x-minutely-delivery")
    );
    let (_, list) = s.request("GET", "/api/v1/incidents", ADMIN_KEY, None);
    assert_eq!(list["incidents"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_alerts_get_clear_errors_and_yaml_round_trips() {
    let s = Server::start_with(&["--alerts-clock", "manual", "--statsd", "off"]);
    let bad = |body: Value, want: &str| {
        let (code, v) = s.request("POST", "/api/v1/alerts", ADMIN_KEY, Some(&body));
        assert_eq!(code, 400, "{v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(want), "{msg:?} lacks {want:?}");
    };
    let mut a = orders_stopped("http://127.0.0.1:9/x");
    a["condition"] = json!({"op": "<"});
    bad(a, "threshold");
    let mut a = orders_stopped("http://127.0.0.1:9/x");
    a["no_data"] = json!("maybe");
    bad(a, "zero");
    let mut a = orders_stopped("http://127.0.0.1:9/x");
    a["channels"] = json!([{"type": "pager"}]);
    bad(a, "pager");
    let (code, _) = s.request(
        "POST",
        "/api/v1/alerts",
        PUSH_KEY,
        Some(&orders_stopped("http://127.0.0.1:9/x")),
    );
    assert_eq!(code, 403);

    let yaml = "name: orders stopped\nmetric: order_count\ncondition: {op: '<', threshold: 1}\nwarmup_minutes: 15\nno_data: alert\n";
    let resp = ureq::put(&format!("{}/api/v1/alerts/orders", s.url))
        .set("Authorization", &format!("Bearer {ADMIN_KEY}"))
        .set("Content-Type", "application/yaml")
        .send_string(yaml)
        .unwrap();
    assert_eq!(resp.status(), 201);
    let text = ureq::get(&format!("{}/api/v1/alerts/orders?format=yaml", s.url))
        .set("Authorization", &format!("Bearer {ADMIN_KEY}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(text.contains("no_data: alert"), "{text}");
    assert!(text.contains("warmup_minutes: 15"), "{text}");
    // The server's own clock cannot be driven.
    let s2 = Server::start_with(&["--statsd", "off"]);
    let (code, _) = s2.request("POST", "/api/v1/alerts/evaluate?to=now", ADMIN_KEY, None);
    assert_eq!(code, 409);
}

#[test]
fn test_notification_goes_out_at_once_and_reports_the_delivery_error() {
    let rx = Receiver::start(200);
    let s = Server::start_with(&["--alerts-clock", "manual", "--statsd", "off"]);
    let send = |key: &str, body: Value| {
        s.request("POST", "/api/v1/alerts/test-notification", key, Some(&body))
    };

    // A channel as given (the editor's unsaved form): signed, marked as a test.
    let hook = json!({"type": "webhook", "url": rx.url, "secret": SECRET});
    let (code, v) = send(ADMIN_KEY, json!({"channel": hook}));
    assert_eq!(
        (code, v),
        (200, json!({"sent": true, "channel": "webhook"}))
    );
    let (hit, raw) = rx.accepted()[0].clone();
    check_signed(&hit, &raw);
    assert_eq!(hit.body["event"], "test");
    assert_eq!(hit.body["test"], true);
    assert_eq!(hit.body["state"], "test");
    assert!(hit.header("x-minutely-delivery").is_some());

    // Slack text says TEST.
    let (code, _) = send(
        ADMIN_KEY,
        json!({"channel": {"type": "slack", "url": rx.url}}),
    );
    assert_eq!(code, 200);
    let text = rx.accepted()[1].0.body["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.starts_with("[TEST] test notification"), "{text}");

    // A stored alert's channel by index, with the alert's name.
    let (code, v) = s.request(
        "POST",
        "/api/v1/alerts",
        ADMIN_KEY,
        Some(&orders_stopped(&rx.url)),
    );
    assert_eq!(code, 201, "{v}");
    let (code, v) = send(
        ADMIN_KEY,
        json!({"alert": "orders-stopped", "channel_index": 0}),
    );
    assert_eq!(code, 200, "{v}");
    let (hit, raw) = rx.accepted()[2].clone();
    check_signed(&hit, &raw);
    assert_eq!(hit.body["alert"], "orders stopped");
    assert_eq!(hit.body["alert_id"], "orders-stopped");
    assert_eq!(hit.body["metric"], "order_count");

    // The receiver refuses: the answer carries its error, nothing is queued.
    rx.status.store(500, Ordering::SeqCst);
    let (code, v) = send(ADMIN_KEY, json!({"channel": hook}));
    assert_eq!(code, 502, "{v}");
    assert_eq!(v["sent"], false);
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("answered 500"), "{err}");
    // Nobody listening.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let (code, v) = send(
        ADMIN_KEY,
        json!({"channel": {"type": "webhook", "url": dead}}),
    );
    assert_eq!(code, 502, "{v}");
    assert!(v["error"].as_str().unwrap().contains(&dead), "{v}");
    // Email without an SMTP server.
    let (code, v) = send(
        ADMIN_KEY,
        json!({"channel": {"type": "email", "to": ["ops@example.com"]}}),
    );
    assert_eq!(code, 502, "{v}");
    assert!(v["error"].as_str().unwrap().contains("--smtp-host"), "{v}");
    let (_, outbox) = s.request("GET", "/api/v1/alerts/outbox", ADMIN_KEY, None);
    assert_eq!(
        outbox["notifications"],
        json!([]),
        "tests bypass the outbox"
    );

    // Bad requests.
    for (body, want) in [
        (json!({}), "either"),
        (
            json!({"alert": "orders-stopped", "channel_index": 3}),
            "channel_index 3",
        ),
        (
            json!({"channel": {"type": "webhook", "url": "ftp://x"}}),
            "http://",
        ),
        (json!({"channel": {"type": "pager"}}), "pager"),
    ] {
        let (code, v) = send(ADMIN_KEY, body);
        assert_eq!(code, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{v}");
    }
    let (code, _) = send(ADMIN_KEY, json!({"alert": "nope", "channel_index": 0}));
    assert_eq!(code, 404);
    let (code, _) = send(PUSH_KEY, json!({"channel": hook}));
    assert_eq!(code, 403);
    assert_eq!(rx.accepted().len(), 3, "only the three good tests arrived");
}

#[test]
fn alerts_of_an_app_that_does_not_exist_are_404() {
    let s = Server::start_with(&["--alerts-clock", "manual", "--statsd", "off"]);
    let alert = orders_stopped("http://127.0.0.1:9/x");
    let channel = json!({"channel": {"type": "webhook", "url": "http://127.0.0.1:9/x"}});
    let want = "no app \"blog\"; create it with POST /api/v1/apps";
    let checks = [
        ("GET", "/api/v1/alerts?app=blog", None),
        ("POST", "/api/v1/alerts?app=blog", Some(&alert)),
        ("PUT", "/api/v1/alerts/orders?app=blog", Some(&alert)),
        ("GET", "/api/v1/alerts/orders?app=blog", None),
        ("DELETE", "/api/v1/alerts/orders?app=blog", None),
        ("POST", "/api/v1/alerts/preview?app=blog", Some(&alert)),
        ("GET", "/api/v1/incidents?app=blog", None),
        (
            "POST",
            "/api/v1/alerts/test-notification?app=blog",
            Some(&channel),
        ),
    ];
    for (method, path, body) in checks {
        let (code, v) = s.request(method, path, ADMIN_KEY, body);
        assert_eq!(
            (code, v["error"].as_str()),
            (404, Some(want)),
            "{method} {path}"
        );
    }
    let (code, _) = s.request(
        "POST",
        "/api/v1/apps",
        ADMIN_KEY,
        Some(&json!({"name": "blog"})),
    );
    assert_eq!(code, 201);
    let (code, v) = s.request(
        "PUT",
        "/api/v1/alerts/orders?app=blog",
        ADMIN_KEY,
        Some(&alert),
    );
    assert_eq!(code, 201, "{v}");
    let (code, v) = s.request("GET", "/api/v1/alerts?app=blog", ADMIN_KEY, None);
    assert_eq!((code, v["alerts"][0]["id"].as_str()), (200, Some("orders")));
    let (code, v) = s.request("GET", "/api/v1/incidents?app=blog", ADMIN_KEY, None);
    assert_eq!(
        (code, v["incidents"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}
