//! Keys and access: a push key can only push, a read key cannot change
//! anything, a revoked key is refused at once, only hashes of keys reach
//! the disk, and cross-origin requests get no CORS grant.

mod common;
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// App `shop` with one key of each scope: (push, read, admin).
fn shop_keys(s: &Server) -> (String, String, String) {
    let (code, ans) = s.request(
        "POST",
        "/api/v1/apps",
        ADMIN_KEY,
        Some(&json!({"name": "shop"})),
    );
    assert_eq!(code, 201, "{ans}");
    let key = |scope: &str| {
        let (code, ans) = s.request(
            "POST",
            "/api/v1/apps/shop/keys",
            ADMIN_KEY,
            Some(&json!({"scope": scope, "name": scope})),
        );
        assert_eq!(code, 201, "{ans}");
        ans["key"].as_str().unwrap().to_string()
    };
    (key("push"), key("read"), key("admin"))
}

fn dashboard() -> Value {
    json!({"title": "Orders", "graphs": [{"title": "Orders", "metrics": [{"name": "order_count"}]}]})
}

fn alert() -> Value {
    json!({"name": "orders stopped", "metric": "order_count", "field": "sum",
        "condition": {"op": "<", "threshold": 1}, "no_data": "zero", "channels": []})
}

/// Every endpoint that changes something, with a body it would accept
/// from an admin key.
fn changing_requests() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("POST", "/api/v1/apps", Some(json!({"name": "blog"}))),
        (
            "POST",
            "/api/v1/apps/shop/keys",
            Some(json!({"scope": "admin"})),
        ),
        (
            "POST",
            "/api/v1/apps/shop/keys",
            Some(json!({"scope": "push"})),
        ),
        ("DELETE", "/api/v1/apps/shop/keys/KEYID", None),
        (
            "POST",
            "/api/v1/backup",
            Some(json!({"dest": "/tmp/minutely-never"})),
        ),
        ("POST", "/api/v1/dashboards?app=shop", Some(dashboard())),
        (
            "PUT",
            "/api/v1/dashboards/orders?app=shop",
            Some(dashboard()),
        ),
        ("DELETE", "/api/v1/dashboards/orders?app=shop", None),
        ("POST", "/api/v1/alerts?app=shop", Some(alert())),
        (
            "PUT",
            "/api/v1/alerts/orders-stopped?app=shop",
            Some(alert()),
        ),
        ("DELETE", "/api/v1/alerts/orders-stopped?app=shop", None),
        ("POST", "/api/v1/alerts/evaluate?from=0&to=60", None),
    ]
}

/// Every endpoint that reads stored data or settings.
fn reading_requests() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/api/v1/query?app=shop&metric=order_count", None),
        (
            "POST",
            "/api/v1/query",
            Some(json!({"queries": [{"app": "shop", "metric": "order_count"}]})),
        ),
        ("GET", "/api/v1/metrics?app=shop", None),
        ("GET", "/api/v1/apps", None),
        ("GET", "/api/v1/apps/shop/keys", None),
        ("GET", "/api/v1/dashboards?app=shop", None),
        ("GET", "/api/v1/dashboards/orders?app=shop", None),
        ("GET", "/api/v1/alerts?app=shop", None),
        ("GET", "/api/v1/alerts/orders-stopped?app=shop", None),
        ("GET", "/api/v1/incidents?app=shop", None),
        ("GET", "/api/v1/alerts/outbox", None),
        (
            "POST",
            "/api/v1/alerts/preview?app=shop&from=-1h&to=now",
            Some(alert()),
        ),
    ]
}

/// What the server holds that a key could change or see: compared before
/// and after the refused requests.
fn state(s: &Server) -> Value {
    let get = |path: &str| {
        let (code, v) = s.request("GET", path, ADMIN_KEY, None);
        assert_eq!(code, 200, "{path}: {v}");
        v
    };
    let mut alerts = get("/api/v1/alerts?app=shop");
    // `evaluated_through` moves with the server's own evaluator.
    for a in alerts["alerts"].as_array_mut().unwrap() {
        a.as_object_mut().unwrap().remove("evaluated_through");
    }
    json!({
        "apps": get("/api/v1/apps"),
        "keys": get("/api/v1/apps/shop/keys"),
        "all_keys": get("/api/v1/apps/default/keys"),
        "dashboards": get("/api/v1/dashboards?app=shop"),
        "alerts": alerts,
    })
}

#[test]
fn push_keys_only_push_and_read_keys_only_read() {
    let s = Server::start();
    let (push, read, admin) = shop_keys(&s);
    let (code, ans) = s.request(
        "POST",
        "/api/v1/push",
        &push,
        Some(&json!({"points": [{"kind": "counter", "name": "order_count", "value": 1}]})),
    );
    assert_eq!((code, ans["accepted"].clone()), (200, json!(1)), "{ans}");
    for (method, path, body) in [
        ("POST", "/api/v1/dashboards?app=shop", dashboard()),
        ("POST", "/api/v1/alerts?app=shop", alert()),
    ] {
        let (code, ans) = s.request(method, path, &admin, Some(&body));
        assert_eq!(code, 201, "{path}: {ans}");
    }
    let (_, keys) = s.request("GET", "/api/v1/apps/shop/keys", ADMIN_KEY, None);
    let key_id = keys["keys"][0]["id"].as_str().unwrap().to_string();
    let before = state(&s);

    for (method, path, body) in changing_requests() {
        let path = path.replace("KEYID", &key_id);
        for (who, key) in [("push", &push), ("read", &read)] {
            let (code, ans) = s.request(method, &path, key, body.as_ref());
            assert_eq!(code, 403, "{who} key, {method} {path}: {ans}");
            assert!(ans["error"].is_string(), "{ans}");
        }
    }
    for (method, path, body) in reading_requests() {
        let (code, ans) = s.request(method, path, &push, body.as_ref());
        assert_eq!(code, 403, "push key, {method} {path}: {ans}");
        assert!(ans["error"].is_string(), "{ans}");
    }
    // A read key cannot push either, over HTTP JSON or OTLP.
    let (code, _) = s.request("POST", "/api/v1/push", &read, Some(&json!({"points": []})));
    assert_eq!(code, 403);
    let otlp = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "otlp_gauge",
        "gauge": {"dataPoints": [{"asDouble": 1, "timeUnixNano": format!("{}", (now() as u64) * 1_000_000_000)}]}}]}]}]});
    // A read key in the header is refused as a whole, like the JSON push
    // (OTLP errors are a google.rpc.Status: `message`, not `error`).
    let (code, ans) = s.request("POST", "/v1/metrics", &read, Some(&otlp));
    assert_eq!(code, 403, "{ans}");
    assert!(
        ans["message"]
            .as_str()
            .unwrap()
            .contains("read key cannot push"),
        "{ans}"
    );
    let (_, q) = s.query(&[("app", "shop"), ("metric", "otlp_gauge")]);
    assert!(q["series"].as_array().unwrap().is_empty(), "{q}");
    assert_eq!(state(&s), before, "a refused request changed something");
    assert!(!std::path::Path::new("/tmp/minutely-never").exists());

    // The read key does read its own app (what it is for), not others.
    let (code, ans) = s.query_with(&read, &[("app", "shop"), ("metric", "order_count")]);
    assert_eq!(code, 200, "{ans}");
    let (code, _) = s.query_with(&read, &[("app", "default"), ("metric", "order_count")]);
    assert_eq!(code, 403);
}

#[test]
fn revocation_takes_effect_at_once() {
    let s = Server::start();
    let (push, read, admin) = shop_keys(&s);
    let (_, keys) = s.request("GET", "/api/v1/apps/shop/keys", ADMIN_KEY, None);
    let one_point = json!({"points": [{"kind": "counter", "name": "order_count", "value": 1}]});
    for key in [&push, &read, &admin] {
        // The key works ...
        let probe = |k: &str| {
            if k == push {
                s.request("POST", "/api/v1/push", k, Some(&one_point)).0
            } else {
                s.query_with(k, &[("app", "shop"), ("metric", "order_count")])
                    .0
            }
        };
        assert_eq!(probe(key), 200);
    }
    // ... and the very next request after its revocation is refused.
    for (name, key) in [("push", &push), ("read", &read), ("admin", &admin)] {
        let id = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, ans) = s.request(
            "DELETE",
            &format!("/api/v1/apps/shop/keys/{id}"),
            ADMIN_KEY,
            None,
        );
        assert_eq!(code, 204, "{ans}");
        let (code, ans) = if name == "push" {
            s.request("POST", "/api/v1/push", key, Some(&one_point))
        } else {
            s.query_with(key, &[("app", "shop"), ("metric", "order_count")])
        };
        assert_eq!(code, 401, "{name}: {ans}");
        assert!(ans["error"].as_str().unwrap().contains("revoked"), "{ans}");
    }
    // Also over OTLP and for a revoked admin's changes.
    let (code, _) = s.request("POST", "/v1/metrics", &push, Some(&json!({})));
    assert_eq!(code, 401);
    let (code, _) = s.request("POST", "/api/v1/apps", &admin, Some(&json!({"name": "x"})));
    assert_eq!(code, 401);
    // And after a restart.
    let dir = s.data_dir.clone();
    let mut s = s;
    s.stop();
    let s2 = Server::start_in(&dir, &[]);
    let (code, _) = s2.request("POST", "/api/v1/push", &push, Some(&one_point));
    assert_eq!(code, 401);
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn keys_are_stored_hashed_and_no_file_holds_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut s = Server::start_in(&dir, &[]);
    let (push, read, admin) = shop_keys(&s);
    s.push(&json!({"points": [{"kind": "counter", "name": "c", "value": 1}]}));
    // Some files only while running (the log), some after a clean stop.
    let mut seen = Vec::new();
    for phase in ["running", "stopped"] {
        if phase == "stopped" {
            s.stop();
        }
        let mut files = Vec::new();
        files_under(&dir, &mut files);
        assert!(!files.is_empty());
        let all: Vec<u8> = files
            .iter()
            .flat_map(|f| std::fs::read(f).unwrap_or_default())
            .collect();
        let contains = |needle: &str| all.windows(needle.len()).any(|w| w == needle.as_bytes());
        for secret in [PUSH_KEY, ADMIN_KEY, &push, &read, &admin] {
            assert!(
                !contains(secret),
                "{phase}: a file holds the secret {secret}"
            );
            seen.push(contains(&sha256_hex(secret)));
        }
    }
    // The scan does see what is stored: the hashes are there.
    assert!(
        seen.iter().any(|&b| b),
        "no key hash found: the scan is blind"
    );
}

#[test]
fn cors_is_off_by_default() {
    let s = Server::start();
    for path in [
        "/api/v1/query?metric=c",
        "/api/v1/push",
        "/api/v1/apps",
        "/healthz",
    ] {
        // A preflight from another origin is not granted.
        let r = ureq::request("OPTIONS", &format!("{}{path}", s.url))
            .set("Origin", "https://evil.example")
            .set("Access-Control-Request-Method", "POST")
            .set(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .call();
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        assert!(
            !(200..300).contains(&resp.status()),
            "{path}: preflight answered {}",
            resp.status()
        );
        for h in [
            "access-control-allow-origin",
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-allow-credentials",
        ] {
            assert!(resp.header(h).is_none(), "{path}: preflight has {h}");
        }
        // A plain cross-origin request gets no grant either, with or
        // without a key.
        let r = ureq::get(&format!("{}{path}", s.url))
            .set("Origin", "https://evil.example")
            .set("Authorization", &format!("Bearer {ADMIN_KEY}"))
            .call();
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        assert!(
            resp.header("access-control-allow-origin").is_none(),
            "{path}: answer has Access-Control-Allow-Origin"
        );
    }
}
