//! `minutely push` and `minutely query`: the HTTP API from a shell.

use crate::cli::{PushArgs, QueryArgs};
use anyhow::{anyhow, bail, Context, Result};
use minutely_core::timeparse::format_rfc3339;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// The JSON answer, or an error carrying the server's `error` text.
fn answer(result: Result<ureq::Response, ureq::Error>) -> Result<Value> {
    match result {
        Ok(resp) => resp.into_json().context("the server's answer is not JSON"),
        Err(ureq::Error::Status(code, resp)) => {
            let body: Value = resp.into_json().unwrap_or(Value::Null);
            let msg = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no details");
            bail!("server answered {code}: {msg}")
        }
        Err(e) => Err(anyhow!("cannot reach the server: {e}")),
    }
}

pub fn push(args: PushArgs) -> Result<()> {
    let mut tags = BTreeMap::new();
    for t in &args.tags {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| anyhow!("tag {t:?} must look like key=value"))?;
        tags.insert(k.to_string(), v.to_string());
    }
    let mut point =
        json!({"kind": args.kind, "name": args.name, "value": args.value, "tags": tags});
    if let Some(ts) = args.ts {
        point["ts"] = ts.into();
    }
    let mut body = json!({"points": [point]});
    if let Some(env) = &args.env {
        body["env"] = env.clone().into();
    }
    let url = format!(
        "{}/api/v1/push",
        args.endpoint.endpoint.trim_end_matches('/')
    );
    let reply = answer(
        agent()
            .post(&url)
            .set("Authorization", &format!("Bearer {}", args.key))
            .send_json(body),
    )?;
    if let Some(err) = reply["rejected"].as_array().and_then(|r| r.first()) {
        bail!(
            "rejected: {}",
            err["error"].as_str().unwrap_or("unknown reason")
        );
    }
    Ok(())
}

pub fn query(args: QueryArgs) -> Result<()> {
    let mut q: Vec<(&str, String)> = vec![
        ("metric", args.metric.clone()),
        ("from", args.from.clone()),
        ("to", args.to.clone()),
        ("step", args.step.clone()),
    ];
    let optional = [
        ("field", &args.field),
        ("group_by", &args.group_by),
        ("across", &args.across),
        ("app", &args.app),
        ("env", &args.env),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    for t in &args.tags {
        q.push(("tag", t.clone()));
    }
    let url = format!(
        "{}/api/v1/query",
        args.endpoint.endpoint.trim_end_matches('/')
    );
    let mut req = agent()
        .get(&url)
        .set("Authorization", &format!("Bearer {}", args.key));
    for (k, v) in &q {
        req = req.query(k, v);
    }
    let reply = answer(req.call())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        print!("{}", table(&reply));
    }
    Ok(())
}

/// Asks a running server to write a backup to `dest` (on its machine).
pub fn backup_online(endpoint: &str, key: &str, dest: &std::path::Path) -> Result<()> {
    let url = format!("{}/api/v1/backup", endpoint.trim_end_matches('/'));
    let body = json!({"dest": dest.to_string_lossy()});
    answer(
        agent()
            .post(&url)
            .set("Authorization", &format!("Bearer {key}"))
            .send_json(body),
    )?;
    Ok(())
}

/// One row per bucket, one column per series.
fn table(reply: &Value) -> String {
    let series = reply["series"].as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        return format!("no data for {}\n", reply["metric"].as_str().unwrap_or("?"));
    }
    let label = |s: &Value| {
        let tags = s["tags"].as_object().map(|t| {
            t.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        });
        match tags.filter(|t| !t.is_empty()) {
            Some(t) => t,
            None => reply["field"].as_str().unwrap_or("value").to_string(),
        }
    };
    let mut out = format!("{:<20}", "time (UTC)");
    for s in &series {
        out.push_str(&format!(" {:>16}", label(s)));
    }
    out.push('\n');
    let rows = series[0]["points"].as_array().map_or(0, Vec::len);
    for i in 0..rows {
        let ts = series[0]["points"][i][0].as_i64().unwrap_or(0);
        out.push_str(&format!("{:<20}", format_rfc3339(ts)));
        for s in &series {
            let cell = match s["points"][i][1].as_f64() {
                Some(v) => format!("{v}"),
                None => "-".into(),
            };
            out.push_str(&format!(" {cell:>16}"));
        }
        out.push('\n');
    }
    out
}

/// Writes a definition to `output`, or to stdout when none is given.
pub fn write_out(output: Option<std::path::PathBuf>, body: &str) -> Result<()> {
    match output {
        Some(path) => {
            std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            print!("{body}");
            Ok(())
        }
    }
}

/// Reads a definition from `file`, or from stdin when it is `-`.
pub fn read_in(file: &std::path::Path) -> Result<String> {
    if file.as_os_str() == "-" {
        let mut body = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut body)?;
        Ok(body)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
    }
}
