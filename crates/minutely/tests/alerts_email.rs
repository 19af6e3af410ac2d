//! Alert email over SMTP: a real (minimal) SMTP receiver started by the test
//! gets the open notification as a multipart message with a plain text and
//! an HTML part.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

/// Accepts SMTP sessions and sends each message's DATA to the channel.
fn smtp_receiver() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut lines = BufReader::new(stream);
                let _ = out.write_all(b"220 test ESMTP\r\n");
                let mut line = String::new();
                while lines.read_line(&mut line).unwrap_or(0) > 0 {
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-test\r\n250 8BITMIME\r\n"
                    } else if cmd == "DATA" {
                        let _ = out.write_all(b"354 go on\r\n");
                        let mut data = String::new();
                        let mut l = String::new();
                        while lines.read_line(&mut l).unwrap_or(0) > 0 && l != ".\r\n" {
                            data.push_str(&l);
                            l.clear();
                        }
                        let _ = tx.send(data);
                        b"250 queued\r\n"
                    } else if cmd == "QUIT" {
                        let _ = out.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = out.write_all(reply);
                    line.clear();
                }
            });
        }
    });
    (port, rx)
}

#[test]
fn an_opened_incident_is_emailed_with_text_and_html_parts() {
    let (port, mails) = smtp_receiver();
    let port = port.to_string();
    let s = Server::start_with(&[
        "--alerts-clock",
        "manual",
        "--statsd",
        "off",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port,
        "--smtp-tls",
        "none",
        "--smtp-from",
        "alerts@example.com",
    ]);
    let t0 = past_hour();
    // Orders for five minutes, then none: "orders stopped" opens after a 2-minute warm-up.
    let points: Vec<_> = (0..5)
        .map(|m| json!({"kind": "counter", "name": "order_count", "value": 5, "tags": {"region": "eu"}, "ts": t0 + m * 60 + 10}))
        .collect();
    assert_eq!(
        s.push(&json!({"env": "production", "points": points})).0,
        200
    );
    let alert = json!({"name": "orders stopped", "env": "production",
        "metric": "order_count", "field": "sum", "tags": {"region": "*"},
        "condition": {"op": "<", "threshold": 1},
        "warmup_minutes": 2, "cooldown_minutes": 1, "no_data": "zero",
        "channels": [{"type": "email", "to": ["ops@example.com"]}]});
    let (code, ans) = s.request("POST", "/api/v1/alerts", ADMIN_KEY, Some(&alert));
    assert!(code == 200 || code == 201, "{ans}");
    let (code, ans) = s.request(
        "POST",
        &format!("/api/v1/alerts/evaluate?from={t0}&to={}", t0 + 480),
        ADMIN_KEY,
        None,
    );
    assert_eq!(code, 200, "{ans}");
    assert_eq!(ans["notifications_queued"], 1, "{ans}");
    let mail = mails
        .recv_timeout(Duration::from_secs(30))
        .expect("no email arrived");
    assert!(mail.contains("ops@example.com"), "{mail}");
    assert!(mail.contains("alerts@example.com"), "{mail}");
    assert!(mail.contains("orders stopped"), "{mail}");
    assert!(
        mail.contains("text/plain") && mail.contains("text/html"),
        "{mail}"
    );
    // Sent once: nothing more arrives for the same incident.
    assert!(mails.recv_timeout(Duration::from_secs(2)).is_err());
}

#[test]
fn a_test_notification_is_emailed_at_once() {
    let (port, mails) = smtp_receiver();
    let port = port.to_string();
    let s = Server::start_with(&[
        "--statsd",
        "off",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port,
        "--smtp-tls",
        "none",
        "--smtp-from",
        "alerts@example.com",
    ]);
    let (code, ans) = s.request(
        "POST",
        "/api/v1/alerts/test-notification",
        ADMIN_KEY,
        Some(&json!({"channel": {"type": "email", "to": ["ops@example.com"]}})),
    );
    assert_eq!(
        (code, ans),
        (200, json!({"sent": true, "channel": "email"}))
    );
    // The answer came after the SMTP server accepted the message.
    let mail = mails
        .recv_timeout(Duration::from_secs(5))
        .expect("no email arrived");
    assert!(mail.contains("Subject: [TEST] test notification"), "{mail}");
    assert!(mail.contains("ops@example.com"), "{mail}");
    assert!(mail.contains("no incident is open"), "{mail}");
}
