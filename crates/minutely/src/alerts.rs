//! `minutely alerts export|import|list`: alerts as code against a running
//! server (`/api/v1/alerts`). A file holds one alert or a list of them.

use crate::cli::{AlertsAction, AlertsArgs};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::time::Duration;

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

fn text(result: Result<ureq::Response, ureq::Error>) -> Result<String> {
    match result {
        Ok(resp) => resp.into_string().context("reading the server's answer"),
        Err(ureq::Error::Status(code, resp)) => {
            let body: Value = resp.into_json().unwrap_or_default();
            bail!(
                "server answered {code}: {}",
                body["error"].as_str().unwrap_or("no details")
            )
        }
        Err(e) => Err(anyhow!("cannot reach the server: {e}")),
    }
}

/// The keys of a definition (what export writes and import sends).
const DEF_KEYS: [&str; 14] = [
    "name",
    "env",
    "metric",
    "field",
    "tags",
    "condition",
    "warmup_minutes",
    "cooldown_minutes",
    "reminder_minutes",
    "no_data",
    "description",
    "channels",
    "enabled",
    "id",
];

fn definition(v: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in DEF_KEYS {
        if let Some(x) = v.get(k) {
            out.insert(k.to_string(), x.clone());
        }
    }
    Value::Object(out)
}

pub fn run(args: AlertsArgs) -> Result<()> {
    let key = args
        .key
        .or_else(|| std::env::var("MINUTELY_ADMIN_KEY").ok())
        .or_else(|| std::env::var("MINUTELY_READ_KEY").ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            anyhow!("give a key with --key (or MINUTELY_ADMIN_KEY / MINUTELY_READ_KEY)")
        })?;
    let base = format!("{}/api/v1/alerts", args.endpoint.trim_end_matches('/'));
    let auth = format!("Bearer {key}");
    let with_app = |req: ureq::Request| match &args.app {
        Some(app) => req.query("app", app),
        None => req,
    };
    let list = || -> Result<Vec<Value>> {
        let req = agent().get(&base).set("Authorization", &auth);
        let answer: Value = serde_json::from_str(&text(with_app(req).call())?)
            .context("the server's answer is not JSON")?;
        Ok(answer["alerts"].as_array().cloned().unwrap_or_default())
    };
    match args.action {
        AlertsAction::Export { id, output, json } => {
            let items: Vec<Value> = match id {
                Some(id) => {
                    let req = agent()
                        .get(&format!("{base}/{id}"))
                        .set("Authorization", &auth);
                    vec![serde_json::from_str(&text(with_app(req).call())?)?]
                }
                None => list()?,
            };
            let defs: Vec<Value> = items.iter().map(definition).collect();
            let doc = if defs.len() == 1 {
                defs[0].clone()
            } else {
                Value::Array(defs)
            };
            let mut body = if json {
                serde_json::to_string_pretty(&doc)?
            } else {
                serde_norway::to_string(&doc)?
            };
            if !body.ends_with('\n') {
                body.push('\n');
            }
            crate::client::write_out(output, &body)?;
        }
        AlertsAction::Import { file, id } => {
            let body = crate::client::read_in(&file)?;
            // YAML is a superset of JSON: one parser reads both.
            let doc: Value = serde_norway::from_str(&body)
                .with_context(|| format!("{} is not valid YAML or JSON", file.display()))?;
            let defs = match doc {
                Value::Array(items) => items,
                one => vec![one],
            };
            if id.is_some() && defs.len() != 1 {
                bail!("--id needs a file with exactly one alert");
            }
            for mut def in defs {
                let obj = def
                    .as_object_mut()
                    .ok_or_else(|| anyhow!("each alert must be a mapping"))?;
                // An exported id means "replace that alert"; --id wins.
                let target = id
                    .clone()
                    .or_else(|| obj.remove("id").and_then(|v| v.as_str().map(String::from)));
                obj.remove("id");
                let req = match &target {
                    Some(id) => agent().put(&format!("{base}/{id}")),
                    None => agent().post(&base),
                };
                let req = with_app(req)
                    .set("Authorization", &auth)
                    .set("Content-Type", "application/json");
                let answer: Value = serde_json::from_str(&text(req.send_json(def))?)
                    .context("the server's answer is not JSON")?;
                println!(
                    "alert {} ({}) in app {}",
                    answer["id"].as_str().unwrap_or("?"),
                    answer["name"].as_str().unwrap_or(""),
                    answer["app"].as_str().unwrap_or("?")
                );
            }
        }
        AlertsAction::List => {
            for a in list()? {
                let open = a["series"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .filter(|x| {
                                matches!(x["state"].as_str(), Some("open" | "cooling_down"))
                            })
                            .count()
                    })
                    .unwrap_or(0);
                println!(
                    "{:<32} {:<40} open series: {open}",
                    a["id"].as_str().unwrap_or(""),
                    a["name"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}
