//! `minutely dashboards export|import|list`: dashboards as code against a
//! running server (`/api/v1/dashboards`).

use crate::cli::{DashboardsAction, DashboardsArgs};
use anyhow::{anyhow, bail, Context, Result};
use std::time::Duration;

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// The answer's text, or an error with the server's message.
fn text(result: Result<ureq::Response, ureq::Error>) -> Result<String> {
    match result {
        Ok(resp) => resp.into_string().context("reading the server's answer"),
        Err(ureq::Error::Status(code, resp)) => {
            let body: serde_json::Value = resp.into_json().unwrap_or_default();
            let msg = body["error"].as_str().unwrap_or("no details");
            bail!("server answered {code}: {msg}")
        }
        Err(e) => Err(anyhow!("cannot reach the server: {e}")),
    }
}

/// JSON or YAML by the file's extension; for standard input, by its first character.
fn content_type(path: &std::path::Path, body: &str) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => "application/yaml",
        Some("json") => "application/json",
        _ if body.trim_start().starts_with('{') => "application/json",
        _ => "application/yaml",
    }
}

pub fn run(args: DashboardsArgs) -> Result<()> {
    let key = args
        .key
        .or_else(|| std::env::var("MINUTELY_ADMIN_KEY").ok())
        .or_else(|| std::env::var("MINUTELY_READ_KEY").ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            anyhow!("give a key with --key (or MINUTELY_ADMIN_KEY / MINUTELY_READ_KEY)")
        })?;
    let base = format!("{}/api/v1/dashboards", args.endpoint.trim_end_matches('/'));
    let auth = format!("Bearer {key}");
    let with_app = |req: ureq::Request| match &args.app {
        Some(app) => req.query("app", app),
        None => req,
    };
    match args.action {
        DashboardsAction::Export { id, output, json } => {
            let req = agent()
                .get(&format!("{base}/{id}"))
                .set("Authorization", &auth)
                .query("format", if json { "json" } else { "yaml" });
            let mut body = text(with_app(req).call())?;
            if json && !body.ends_with('\n') {
                body.push('\n');
            }
            crate::client::write_out(output, &body)?;
        }
        DashboardsAction::Import { file, id } => {
            let body = crate::client::read_in(&file)?;
            let req = match &id {
                Some(id) => agent().put(&format!("{base}/{id}")),
                None => agent().post(&base),
            };
            let req = with_app(req)
                .set("Authorization", &auth)
                .set("Content-Type", content_type(&file, &body));
            let answer: serde_json::Value = serde_json::from_str(&text(req.send_string(&body))?)
                .context("the server's answer is not JSON")?;
            println!(
                "dashboard {} ({}) in app {}",
                answer["id"].as_str().unwrap_or("?"),
                answer["title"].as_str().unwrap_or(""),
                answer["app"].as_str().unwrap_or("?")
            );
        }
        DashboardsAction::List => {
            let req = agent().get(&base).set("Authorization", &auth);
            let answer: serde_json::Value = serde_json::from_str(&text(with_app(req).call())?)
                .context("the server's answer is not JSON")?;
            for d in answer["dashboards"].as_array().into_iter().flatten() {
                println!(
                    "{:<32} {}",
                    d["id"].as_str().unwrap_or(""),
                    d["title"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}
