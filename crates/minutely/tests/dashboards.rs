//! Dashboards as code against the real binary: CRUD, scopes, validation,
//! the YAML round trip (also through `minutely dashboards export|import`)
//! and AppSignal imports from `testdata/dashboards/`.

mod common;

use common::{bin, Server, ADMIN_KEY, PUSH_KEY};
use serde_json::{json, Value};
use std::path::PathBuf;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/dashboards")
        .join(name)
}

/// A request with a raw body and content type; answers (status, text).
fn send(s: &Server, method: &str, path: &str, key: &str, ctype: &str, body: &str) -> (u16, String) {
    let req = ureq::request(method, &format!("{}{path}", s.url))
        .set("Authorization", &format!("Bearer {key}"));
    let result = if method == "GET" || method == "DELETE" {
        req.call()
    } else {
        req.set("Content-Type", ctype).send_string(body)
    };
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn read_key(s: &Server, app: &str) -> String {
    let (code, v) = s.request(
        "POST",
        &format!("/api/v1/apps/{app}/keys"),
        ADMIN_KEY,
        Some(&json!({"scope": "read"})),
    );
    assert_eq!(code, 201, "{v}");
    v["key"].as_str().unwrap().to_string()
}

#[test]
fn crud_scopes_and_validation() {
    let s = Server::start();
    let d = json!({"title": "Shop", "graphs": [
        {"title": "Orders", "metrics": [{"name": "order_count", "fields": ["sum"], "group_by": ["region"]}]}]});
    // Create.
    let (code, created) = s.request("POST", "/api/v1/dashboards", ADMIN_KEY, Some(&d));
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["id"], "shop");
    assert_eq!(created["app"], "default");
    assert_eq!(created["graphs"][0]["title"], "Orders");
    // A second one with the same title gets a free id.
    let (_, second) = s.request("POST", "/api/v1/dashboards", ADMIN_KEY, Some(&d));
    assert_eq!(second["id"], "shop-2");
    // List and get with a read key.
    let reader = read_key(&s, "default");
    let (code, list) = s.request("GET", "/api/v1/dashboards", &reader, None);
    assert_eq!(code, 200);
    let ids: Vec<_> = list["dashboards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(ids, [json!("shop"), json!("shop-2")]);
    let (code, got) = s.request("GET", "/api/v1/dashboards/shop", &reader, None);
    assert_eq!((code, &got), (200, &created));
    // A read key cannot write; a push key cannot read.
    let (code, e) = s.request("POST", "/api/v1/dashboards", &reader, Some(&d));
    assert_eq!(code, 403, "{e}");
    let (code, _) = s.request("DELETE", "/api/v1/dashboards/shop", &reader, None);
    assert_eq!(code, 403);
    let (code, _) = s.request("GET", "/api/v1/dashboards", PUSH_KEY, None);
    assert_eq!(code, 403);
    // Another app's key sees nothing of this app.
    s.request(
        "POST",
        "/api/v1/apps",
        ADMIN_KEY,
        Some(&json!({"name": "blog"})),
    );
    let blog_reader = read_key(&s, "blog");
    let (code, e) = s.request("GET", "/api/v1/dashboards?app=default", &blog_reader, None);
    assert_eq!(code, 403, "{e}");
    let (code, list) = s.request("GET", "/api/v1/dashboards", &blog_reader, None);
    assert_eq!(
        (code, list["dashboards"].as_array().unwrap().len()),
        (200, 0)
    );
    // Update: the GET answer can be sent back as it is, changed.
    let mut changed = got.clone();
    changed["title"] = "Shop (new)".into();
    let (code, put) = s.request("PUT", "/api/v1/dashboards/shop", ADMIN_KEY, Some(&changed));
    assert_eq!(code, 200, "{put}");
    assert_eq!(
        (put["id"].clone(), put["title"].clone()),
        (json!("shop"), json!("Shop (new)"))
    );
    assert_eq!(put["created"], created["created"]);
    // PUT to a new id creates it.
    let (code, _) = s.request("PUT", "/api/v1/dashboards/ops", ADMIN_KEY, Some(&d));
    assert_eq!(code, 201);
    // Delete.
    let (code, _) = s.request("DELETE", "/api/v1/dashboards/shop-2", ADMIN_KEY, None);
    assert_eq!(code, 204);
    let (code, e) = s.request("GET", "/api/v1/dashboards/shop-2", ADMIN_KEY, None);
    assert_eq!(
        (code, e["error"].as_str().unwrap()),
        (404, "app \"default\" has no dashboard \"shop-2\"")
    );
    let (code, _) = s.request("DELETE", "/api/v1/dashboards/shop-2", ADMIN_KEY, None);
    assert_eq!(code, 404);
    // Validation: clear 4xx JSON errors.
    let bad = [
        (
            json!({"graphs": []}),
            400,
            "invalid dashboard: missing field `title`",
        ),
        (
            json!({"title": "x", "graphs": [{"title": "g", "metrics": [{"name": "m", "fields": ["p95x"]}]}]}),
            400,
            "invalid dashboard: graph 1 (\"g\"): metric \"m\": unknown field \"p95x\"",
        ),
        (
            json!({"title": "x", "graphs": [{"title": "g", "chart": "pie", "metrics": [{"name": "m"}]}]}),
            400,
            "invalid dashboard: graph 1 (\"g\"): unknown variant `pie`",
        ),
    ];
    for (body, status, msg) in bad {
        let (code, e) = s.request("POST", "/api/v1/dashboards", ADMIN_KEY, Some(&body));
        assert_eq!(code, status, "{e}");
        assert!(e["error"].as_str().unwrap().starts_with(msg), "{e}");
    }
    let (code, text) = send(
        &s,
        "POST",
        "/api/v1/dashboards",
        ADMIN_KEY,
        "text/plain",
        "title: x",
    );
    assert_eq!(code, 415, "{text}");
    let (code, text) = send(
        &s,
        "POST",
        "/api/v1/dashboards",
        ADMIN_KEY,
        "application/yaml",
        "title: [unclosed",
    );
    assert_eq!(code, 400, "{text}");
    assert!(json_of(&text)["error"]
        .as_str()
        .unwrap()
        .starts_with("not valid YAML"));
    let (code, text) = send(
        &s,
        "PUT",
        "/api/v1/dashboards/Bad%20Id",
        ADMIN_KEY,
        "application/json",
        &d.to_string(),
    );
    assert_eq!(code, 400, "{text}");
    let (code, text) = send(
        &s,
        "GET",
        "/api/v1/dashboards/ops?format=xml",
        ADMIN_KEY,
        "",
        "",
    );
    assert_eq!(code, 400, "{text}");
}

#[test]
fn yaml_round_trip_is_identical() {
    let s = Server::start();
    let native = std::fs::read_to_string(testdata("native.yaml")).unwrap();
    let (code, text) = send(
        &s,
        "POST",
        "/api/v1/dashboards",
        ADMIN_KEY,
        "application/yaml",
        &native,
    );
    assert_eq!(code, 201, "{text}");
    let id = json_of(&text)["id"].as_str().unwrap().to_string();
    let export = |id: &str| {
        send(
            &s,
            "GET",
            &format!("/api/v1/dashboards/{id}?format=yaml"),
            ADMIN_KEY,
            "",
            "",
        )
    };
    let (code, first) = export(&id);
    assert_eq!(code, 200);
    assert_eq!(
        first, native,
        "the export of a file written as we export is that file"
    );
    // Export -> import -> export.
    let (code, text) = send(
        &s,
        "POST",
        "/api/v1/dashboards",
        ADMIN_KEY,
        "application/x-yaml",
        &first,
    );
    assert_eq!(code, 201, "{text}");
    let again_id = json_of(&text)["id"].as_str().unwrap().to_string();
    assert_ne!(again_id, id);
    assert_eq!(export(&again_id).1, first);
    // JSON and YAML describe the same dashboard.
    let (_, as_json) = send(
        &s,
        "GET",
        &format!("/api/v1/dashboards/{id}"),
        ADMIN_KEY,
        "",
        "",
    );
    let (code, text) = send(
        &s,
        "PUT",
        "/api/v1/dashboards/from-json",
        ADMIN_KEY,
        "application/json",
        &as_json,
    );
    assert_eq!(code, 201, "{text}");
    assert_eq!(export("from-json").1, first);

    // The same through the command line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.yaml");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .arg("dashboards")
            .args(args)
            .args(["--endpoint", &s.url, "--key", ADMIN_KEY])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["export", &id, "--output", file.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);
    let printed = cli(&["import", file.to_str().unwrap()]);
    let new_id = printed.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(cli(&["export", &new_id]), first);
    cli(&["import", file.to_str().unwrap(), "--id", "applied"]);
    cli(&["import", file.to_str().unwrap(), "--id", "applied"]);
    let listed = cli(&["list"]);
    assert!(
        listed.contains("applied") && listed.contains(&new_id),
        "{listed}"
    );
}

#[test]
fn appsignal_imports_map_fields_and_tags() {
    let s = Server::start();
    let import = |file: &str, ctype: &str| {
        let body = std::fs::read_to_string(testdata(file)).unwrap();
        let (code, text) = send(&s, "POST", "/api/v1/dashboards", ADMIN_KEY, ctype, &body);
        assert_eq!(code, 201, "{file}: {text}");
        json_of(&text)
    };
    let d = import("appsignal_export.json", "application/json");
    assert_eq!(d["title"], "Checkout");
    let g = &d["graphs"];
    assert_eq!(g[0]["label"], "%name% %region%");
    assert_eq!(g[0]["draw_null_as_zero"], true);
    assert_eq!(
        g[0]["metrics"][0],
        json!({"name": "order_count", "fields": ["sum"], "tags": {"region": "*"}, "group_by": ["region"]})
    );
    assert_eq!(g[1]["chart"], "area");
    assert_eq!(g[1]["metrics"][0]["fields"], json!(["mean", "p90", "p95"]));
    assert_eq!(g[1]["metrics"][0]["tags"], json!({"region": "eu"}));
    assert_eq!(
        (g[2]["format"].clone(), g[2]["format_input"].clone()),
        (json!("duration"), json!("ms"))
    );
    assert_eq!(g[2]["metrics"][0]["fields"], json!(["p95", "count"]));
    assert_eq!(g[2]["metrics"][1]["fields"], json!(["last"]));

    let d = import("appsignal_old.yaml", "application/yaml");
    assert_eq!(d["title"], "Background jobs");
    assert_eq!(
        d["graphs"][0]["metrics"][0],
        json!({"name": "job_queue_length", "fields": ["last"], "tags": {"queue": "*"}, "group_by": ["queue"]})
    );
    assert_eq!(
        d["graphs"][1]["metrics"][0]["fields"],
        json!(["mean", "p95"])
    );
    assert_eq!(d["graphs"][1]["format_input"], "ms");

    let d = import("appsignal_old_list.yaml", "application/yaml");
    assert_eq!(
        (d["title"].clone(), d["graphs"][0]["format_input"].clone()),
        (json!("Memory"), json!("MiB"))
    );

    // An imported dashboard exports as our own YAML and imports back unchanged.
    let (_, yaml) = send(
        &s,
        "GET",
        &format!(
            "/api/v1/dashboards/{}?format=yaml",
            d["id"].as_str().unwrap()
        ),
        ADMIN_KEY,
        "",
        "",
    );
    assert!(
        yaml.contains("format: size") && !yaml.contains("line_label"),
        "{yaml}"
    );
    let (code, text) = send(
        &s,
        "POST",
        "/api/v1/dashboards",
        ADMIN_KEY,
        "application/yaml",
        &yaml,
    );
    assert_eq!(code, 201, "{text}");
    let (_, again) = send(
        &s,
        "GET",
        &format!(
            "/api/v1/dashboards/{}?format=yaml",
            json_of(&text)["id"].as_str().unwrap()
        ),
        ADMIN_KEY,
        "",
        "",
    );
    assert_eq!(again, yaml);

    // Unknown AppSignal fields are refused with the graph named.
    let bad = json!({"dashboard": {"title": "x", "visuals": [{"title": "g", "metrics": [{"name": "m", "fields": [{"field": "HISTOGRAM"}]}]}]}});
    let (code, e) = s.request("POST", "/api/v1/dashboards", ADMIN_KEY, Some(&bad));
    assert_eq!(code, 400);
    assert!(e["error"].as_str().unwrap().starts_with("invalid dashboard: graph 1 (\"g\"): metric \"m\": unknown AppSignal field \"HISTOGRAM\""), "{e}");
}

#[test]
fn demo_creates_its_dashboards_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut s = Server::start_in(&dir, &["--demo"]);
    let (code, list) = s.request("GET", "/api/v1/dashboards?app=webshop", ADMIN_KEY, None);
    assert_eq!(code, 200);
    let ids: Vec<_> = list["dashboards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(ids, [json!("order-sizes"), json!("webshop-overview")]);
    s.request(
        "DELETE",
        "/api/v1/dashboards/order-sizes?app=webshop",
        ADMIN_KEY,
        None,
    );
    s.stop();
    let s = Server::start_in(&dir, &["--demo"]);
    let (_, list) = s.request("GET", "/api/v1/dashboards?app=webshop", ADMIN_KEY, None);
    assert_eq!(
        list["dashboards"].as_array().unwrap().len(),
        1,
        "a deleted demo dashboard stays deleted"
    );
}

#[test]
fn root_serves_the_web_ui_or_says_how_to_build_it() {
    let s = Server::start();
    let resp = ureq::get(&format!("{}/", s.url)).call().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.content_type().starts_with("text/html"));
    let page = resp.into_string().unwrap();
    assert!(
        page.contains("<script src=\"/app.js\">") || page.contains("web UI is not built"),
        "{page}"
    );
    // API paths still answer JSON 404s.
    let (code, e) = s.request("GET", "/api/v1/nothing", ADMIN_KEY, None);
    assert_eq!(
        (code, e["error"].as_str().unwrap()),
        (404, "no endpoint at /api/v1/nothing")
    );
}

#[test]
fn dashboards_of_an_app_that_does_not_exist_are_404() {
    let s = Server::start_with(&["--statsd", "off"]);
    let body = json!({"title": "Blog", "graphs": []});
    let want = "no app \"blog\"; create it with POST /api/v1/apps";
    for (method, path, body) in [
        ("GET", "/api/v1/dashboards?app=blog", None),
        ("POST", "/api/v1/dashboards?app=blog", Some(&body)),
        ("PUT", "/api/v1/dashboards/blog?app=blog", Some(&body)),
        ("GET", "/api/v1/dashboards/blog?app=blog", None),
        ("DELETE", "/api/v1/dashboards/blog?app=blog", None),
    ] {
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
        "POST",
        "/api/v1/dashboards?app=blog",
        ADMIN_KEY,
        Some(&body),
    );
    assert_eq!(code, 201, "{v}");
    let (code, v) = s.request("GET", "/api/v1/dashboards?app=blog", ADMIN_KEY, None);
    assert_eq!(
        (code, v["dashboards"][0]["id"].as_str()),
        (200, Some("blog"))
    );
}
