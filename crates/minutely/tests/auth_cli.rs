//! Keys and scopes over HTTP, the first-start keys, `minutely push`,
//! `minutely query`, `minutely keys`, health and the server's own metrics.

mod common;
use common::*;
use serde_json::json;
use std::process::Command;

#[test]
fn keys_have_scopes_and_apps() {
    let s = Server::start();
    // A push key cannot read.
    let (code, ans) = s.query_with(PUSH_KEY, &[("metric", "c")]);
    assert_eq!(code, 403, "{ans}");
    assert!(ans["error"].as_str().unwrap().contains("push key cannot"));
    // No key, a wrong key, a malformed header.
    assert_eq!(s.request("GET", "/api/v1/metrics", "nope", None).0, 401);
    let (code, ans) = s.request("POST", "/api/v1/push", "", Some(&json!({"points": []})));
    assert_eq!(code, 401, "{ans}");
    // Admin makes an app and its keys; the secret is shown once.
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/apps",
            ADMIN_KEY,
            Some(&json!({"name": "blog"}))
        )
        .0,
        201
    );
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/apps",
            ADMIN_KEY,
            Some(&json!({"name": "blog"}))
        )
        .0,
        409
    );
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/apps",
            ADMIN_KEY,
            Some(&json!({"name": "bad name"}))
        )
        .0,
        400
    );
    let (code, push) = s.request(
        "POST",
        "/api/v1/apps/blog/keys",
        ADMIN_KEY,
        Some(&json!({"scope": "push", "name": "web"})),
    );
    assert_eq!(code, 201, "{push}");
    let (_, read) = s.request(
        "POST",
        "/api/v1/apps/blog/keys",
        ADMIN_KEY,
        Some(&json!({"scope": "read"})),
    );
    let (blog_push, blog_read) = (push["key"].as_str().unwrap(), read["key"].as_str().unwrap());
    // The blog's push key pushes into the blog app only.
    let (code, ans) = s.request(
        "POST",
        "/api/v1/push",
        blog_push,
        Some(&json!({"points": [{"kind": "counter", "name": "posts", "value": 1}]})),
    );
    assert_eq!((code, ans["accepted"].clone()), (200, json!(1)));
    let (code, _) = s.request(
        "POST",
        "/api/v1/push",
        blog_push,
        Some(&json!({"app": "default", "points": []})),
    );
    assert_eq!(code, 403);
    // An admin key for every app may name the app, which must exist.
    let (code, ans) = s.request(
        "POST",
        "/api/v1/push",
        ADMIN_KEY,
        Some(&json!({"app": "nope", "points": []})),
    );
    assert_eq!(code, 404, "{ans}");
    let (code, _) = s.request(
        "POST",
        "/api/v1/push",
        ADMIN_KEY,
        Some(&json!({"app": "bad\u{0}app", "points": []})),
    );
    assert_eq!(code, 400);
    let (code, ans) = s.request(
        "POST",
        "/api/v1/push",
        ADMIN_KEY,
        Some(&json!({"app": "blog", "points": [{"kind": "counter", "name": "posts", "value": 1}]})),
    );
    assert_eq!((code, ans["accepted"].clone()), (200, json!(1)));
    // The blog's read key reads the blog, not the default app, and cannot push or manage.
    let (code, ans) = s.query_with(blog_read, &[("metric", "posts"), ("from", "-5m")]);
    assert_eq!(code, 200, "{ans}");
    assert_eq!(ans["series"].as_array().unwrap().len(), 1);
    assert_eq!(
        points(&ans["series"][0])
            .iter()
            .filter_map(|p| p.1)
            .sum::<f64>(),
        2.0
    );
    assert_eq!(
        s.query_with(blog_read, &[("app", "default"), ("metric", "posts")])
            .0,
        403
    );
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/push",
            blog_read,
            Some(&json!({"points": []}))
        )
        .0,
        403
    );
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/apps/blog/keys",
            blog_read,
            Some(&json!({"scope": "admin"}))
        )
        .0,
        403
    );
    // The catalogue.
    let (code, cat) = s.request("GET", "/api/v1/metrics?app=blog", ADMIN_KEY, None);
    assert_eq!(code, 200);
    assert_eq!(cat["metrics"][0]["name"], "posts");
    assert_eq!(cat["metrics"][0]["kind"], "counter");
    assert_eq!(cat["metrics"][0]["series"], 1);
    assert!(cat["metrics"][0]["last_seen"].as_i64().unwrap() > 0);
    // Revoking a key locks it out at once.
    let (_, keys) = s.request("GET", "/api/v1/apps/blog/keys", ADMIN_KEY, None);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);
    assert!(
        !keys.to_string().contains(blog_read),
        "secrets are never listed"
    );
    let id = read["id"].as_str().unwrap();
    assert_eq!(
        s.request(
            "DELETE",
            &format!("/api/v1/apps/blog/keys/{id}"),
            ADMIN_KEY,
            None
        )
        .0,
        204
    );
    assert_eq!(s.query_with(blog_read, &[("metric", "posts")]).0, 401);
}

#[test]
fn random_first_keys_are_printed_once_and_work() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("d"))
        .env_remove("MINUTELY_PUSH_KEY")
        .env_remove("MINUTELY_ADMIN_KEY")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut push, mut admin, mut url) = (None, None, None);
    while url.is_none() {
        let line = lines.next().unwrap().unwrap();
        if let Some(k) = line.trim().strip_prefix("push key:") {
            push = Some(k.trim().to_string());
        } else if let Some(k) = line.trim().strip_prefix("admin key:") {
            admin = Some(k.trim().to_string());
        } else if let Some(u) = line.strip_prefix("minutely listening on ") {
            url = Some(u.to_string());
        }
    }
    let (push, admin, url) = (push.unwrap(), admin.unwrap(), url.unwrap());
    assert!(push.starts_with("mk_push_") && push.len() > 30);
    let ok = ureq::post(&format!("{url}/api/v1/push"))
        .set("Authorization", &format!("Bearer {push}"))
        .send_json(json!({"points": [{"kind": "gauge", "name": "g", "value": 1}]}))
        .unwrap();
    assert_eq!(ok.status(), 200);
    let q = ureq::get(&format!("{url}/api/v1/query?metric=g"))
        .set("Authorization", &format!("Bearer {admin}"))
        .call()
        .unwrap();
    assert_eq!(q.status(), 200);
    // Stored hashed: the secret is nowhere in the data directory.
    let _ = child.kill();
    let _ = child.wait();
    let db = std::fs::read(tmp.path().join("d/minutely.redb")).unwrap();
    assert!(!db.windows(push.len()).any(|w| w == push.as_bytes()));
}

#[test]
fn command_line_push_query_and_keys() {
    let mut s = Server::start();
    let t0 = past_hour();
    let url = s.url.clone();
    let run = |args: &[&str], envs: &[(&str, &str)]| {
        let out = Command::new(bin())
            .args(args)
            .env("MINUTELY_ENDPOINT", &url)
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let push_env = [("MINUTELY_PUSH_KEY", PUSH_KEY)];
    for (v, ts) in [("2.5", t0), ("-1", t0 + 30), ("10", t0 + 60)] {
        let (ok, _, err) = run(
            &[
                "push",
                "backup_runs",
                v,
                "--kind",
                "counter",
                "--tag",
                "host=db1",
                "--ts",
                &ts.to_string(),
            ],
            &push_env,
        );
        assert!(ok, "{err}");
    }
    let (ok, _, err) = run(&["push", "bad name", "1"], &push_env);
    assert!(!ok && err.contains("metric name"), "{err}");
    let (ok, _, err) = run(&["push", "x", "1", "--key", "wrong"], &[]);
    assert!(!ok && err.contains("401"), "{err}");
    let read_env = [("MINUTELY_READ_KEY", ADMIN_KEY)];
    let (ok, out, err) = run(
        &[
            "query",
            "backup_runs",
            "--from",
            &t0.to_string(),
            "--to",
            &(t0 + 120).to_string(),
            "--step",
            "60",
        ],
        &read_env,
    );
    assert!(ok, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[1].contains(&minutely_core::timeparse::format_rfc3339(t0))
            && rows[1].trim_end().ends_with("1.5"),
        "{out}"
    );
    assert!(rows[2].trim_end().ends_with("10"), "{out}");
    let (ok, out, _) = run(
        &[
            "query",
            "backup_runs",
            "--json",
            "--from",
            &t0.to_string(),
            "--to",
            &(t0 + 60).to_string(),
            "--group-by",
            "host",
        ],
        &read_env,
    );
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["series"][0]["tags"]["host"], "db1");

    // Keys on the data directory, with the server stopped.
    s.stop();
    let dir = s.data_dir.to_str().unwrap().to_string();
    let (ok, key, err) = run(
        &[
            "keys",
            "create",
            "--scope",
            "read",
            "--app",
            "default",
            "--data-dir",
            &dir,
        ],
        &[],
    );
    assert!(ok, "{err}");
    let (ok, list, _) = run(&["keys", "list", "--data-dir", &dir], &[]);
    assert!(ok && list.lines().count() == 4, "{list}");
    let s2 = Server::start_in(&s.data_dir, &[]);
    assert_eq!(
        s2.query_with(key.trim(), &[("metric", "backup_runs")]).0,
        200
    );
}

#[test]
fn health_and_own_metrics() {
    let s = Server::start();
    assert!(s.get_text("/healthz").contains("\"ok\""));
    s.push(&json!({"points": [{"kind": "counter", "name": "c", "value": 1}, {"kind": "counter", "name": "1bad", "value": 1}]}));
    let m = s.get_text("/metrics");
    for want in [
        "minutely_points_accepted_total 1",
        "minutely_points_rejected_total{reason=\"bad_name\"} 1",
        "minutely_push_requests_total{status=\"200\"} 1",
        "minutely_push_duration_seconds_count 1",
        "minutely_series 1",
        "minutely_store_bytes ",
        "minutely_checkpoint_failures_total 0",
        "minutely_wal_sync_failures_total 0",
    ] {
        assert!(m.contains(want), "missing {want:?} in\n{m}");
    }
}

#[test]
fn every_error_is_json_even_from_the_router() {
    let s = Server::start();
    let (code, ans) = s.request("GET", "/api/v1/nothing", ADMIN_KEY, None);
    assert_eq!(code, 404);
    assert!(
        ans["error"].as_str().unwrap().contains("/api/v1/nothing"),
        "{ans}"
    );
    let (code, ans) = s.request("GET", "/api/v1/push", PUSH_KEY, None);
    assert_eq!(code, 405);
    assert!(
        ans["error"]
            .as_str()
            .unwrap()
            .contains("does not accept GET"),
        "{ans}"
    );
    let (code, ans) = s.request(
        "POST",
        "/api/v1/apps",
        ADMIN_KEY,
        Some(&json!({"title": "x"})),
    );
    assert_eq!(code, 400);
    assert!(
        ans["error"].as_str().unwrap().contains("body must be"),
        "{ans}"
    );
    let (code, ans) = s.request(
        "POST",
        "/api/v1/apps/default/keys",
        ADMIN_KEY,
        Some(&json!({"scope": "owner"})),
    );
    assert_eq!(code, 400);
    assert!(
        ans["error"].as_str().unwrap().contains("unknown key scope"),
        "{ans}"
    );
}
