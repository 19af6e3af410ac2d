//! Import of AppSignal dashboards (DESIGN section 4): the JSON export
//! (`{"dashboard": {"title", "visuals": [...]}}`) and the older YAML
//! (`graphs:` with `metrics: [{name, fields: [MEAN], tags: {..}}]`).
//!
//! Import is lenient about keys we do not use (real exports carry ids and
//! layout), strict about what we do use: an unknown chart type, format or
//! field is an error naming the graph.

use super::model::{normalize_unit, Chart, Dashboard, Format, Graph, MetricQuery};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Which format a parsed body is in.
pub enum Detected {
    Native(Value),
    AppSignal(Dashboard),
}

/// Tells an AppSignal document from a native one and converts it.
pub fn detect(v: Value) -> Result<Detected, String> {
    // JSON export: {"dashboard": {"title", "visuals"}}.
    if let Some(d) = v.get("dashboard") {
        if let Some(list) = d.as_array() {
            // Older YAML: `dashboard:` holding a list of dashboards.
            return one_of(list).and_then(|d| from_old_yaml(d).map(Detected::AppSignal));
        }
        if d.get("visuals").is_some() || d.get("graphs").is_some() {
            return from_json(d).map(Detected::AppSignal);
        }
    }
    if let Some(list) = v.as_array() {
        return one_of(list).and_then(|d| from_old_yaml(d).map(Detected::AppSignal));
    }
    // Older YAML with graphs whose metrics use AppSignal's upper-case fields
    // or a tag list, or a top-level `visuals`.
    if v.get("visuals").is_some() {
        return from_json(&v).map(Detected::AppSignal);
    }
    if looks_like_old_yaml(&v) {
        return from_old_yaml(&v).map(Detected::AppSignal);
    }
    Ok(Detected::Native(v))
}

fn one_of(list: &[Value]) -> Result<&Value, String> {
    match list {
        [one] => Ok(one),
        [] => Err("the file holds no dashboard".into()),
        many => Err(format!(
            "the file holds {} dashboards; import them one at a time",
            many.len()
        )),
    }
}

/// AppSignal's graphs carry `line_label`, upper-case fields or tag lists,
/// which a native definition never has.
fn looks_like_old_yaml(v: &Value) -> bool {
    let Some(graphs) = v.get("graphs").and_then(Value::as_array) else {
        return false;
    };
    graphs.iter().any(|g| {
        g.get("line_label").is_some()
            || g.get("kind").is_some()
            || g.get("filter").is_some()
            || g.get("metrics")
                .and_then(Value::as_array)
                .is_some_and(|ms| {
                    ms.iter().any(|m| {
                        m.get("tags").is_some_and(Value::is_array)
                            || m.get("fields").and_then(Value::as_array).is_some_and(|fs| {
                                fs.iter().any(|f| {
                                    f.is_object()
                                        || f.as_str().is_some_and(|s| {
                                            s.chars().any(|c| c.is_ascii_uppercase())
                                        })
                                })
                            })
                    })
                })
    })
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// AppSignal field names to ours.
pub fn map_field(f: &str) -> Result<String, String> {
    let upper = f.trim().to_ascii_uppercase();
    let ours = match upper.as_str() {
        "GAUGE" => "last".to_string(),
        "COUNTER" => "sum".to_string(),
        "MEAN" => "mean".to_string(),
        "COUNT" => "count".to_string(),
        "MIN" | "MAX" | "SUM" | "LAST" | "RATE" => upper.to_ascii_lowercase(),
        p if p.starts_with('P') && p[1..].bytes().all(|b| b.is_ascii_digit()) && p.len() > 1 => {
            p.to_ascii_lowercase()
        }
        _ => {
            return Err(format!(
                "unknown AppSignal field {f:?}: expected GAUGE, COUNTER, MEAN, COUNT, P90, P95, ..."
            ))
        }
    };
    minutely_core::Field::parse(&ours)?;
    Ok(ours)
}

fn map_chart(display: &str) -> Result<Chart, String> {
    Ok(match display.trim().to_ascii_lowercase().as_str() {
        "" | "line" | "timeseries" => Chart::Line,
        "area" | "area_stacked" | "stacked" => Chart::Area,
        "relative" | "area_relative" | "relative_area" | "percentage" => Chart::RelativeArea,
        "number" | "value" => Chart::Number,
        other => {
            return Err(format!(
                "unknown display {other:?}: expected LINE, AREA or RELATIVE"
            ))
        }
    })
}

fn map_format(format: &str, input: &str) -> Result<(Format, Option<String>), String> {
    let f = match format.trim().to_ascii_lowercase().as_str() {
        "" | "number" => Format::Number,
        "percent" | "percentage" => Format::Percent,
        "throughput" => Format::Throughput,
        "duration" => Format::Duration,
        "size" => Format::Size,
        other => return Err(format!("unknown format {other:?}")),
    };
    let unit = match f {
        Format::Duration | Format::Size if !input.trim().is_empty() => Some(
            normalize_unit(f, input)
                .ok_or_else(|| format!("unknown format_input {input:?}"))?
                .to_string(),
        ),
        // AppSignal's durations are milliseconds unless it says otherwise.
        Format::Duration => Some("ms".into()),
        _ => None,
    };
    Ok((f, unit))
}

/// Tags as a map, or as AppSignal's list of `{key, value}`.
fn tags(v: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, val) in map {
                out.insert(k.clone(), scalar(val));
            }
        }
        Some(Value::Array(list)) => {
            for t in list {
                let (k, val) = (
                    text(t, "key"),
                    t.get("value").map(scalar).unwrap_or_default(),
                );
                if k.is_empty() {
                    return Err("a tag needs a key".into());
                }
                out.insert(k, if val.is_empty() { "*".into() } else { val });
            }
        }
        Some(_) => return Err("tags must be a map or a list of {key, value}".into()),
    }
    Ok(out)
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "*".into(),
        other => other.to_string(),
    }
}

fn fields(v: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(list) = v.and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for f in list {
        let name = match f {
            Value::String(s) => s.clone(),
            Value::Object(_) => text(f, "field"),
            _ => return Err(format!("field {f} is not a name")),
        };
        let mapped = map_field(&name)?;
        if !out.contains(&mapped) {
            out.push(mapped);
        }
    }
    Ok(out)
}

fn metric(m: &Value) -> Result<MetricQuery, String> {
    let name = text(m, "name");
    Ok(MetricQuery {
        fields: fields(m.get("fields")).map_err(|e| format!("metric {name:?}: {e}"))?,
        tags: tags(m.get("tags")).map_err(|e| format!("metric {name:?}: {e}"))?,
        name,
        group_by: Vec::new(),
        across: None,
    })
}

fn graph(g: &Map<String, Value>) -> Result<Graph, String> {
    let v = Value::Object(g.clone());
    let display = if g.contains_key("display") {
        text(&v, "display")
    } else {
        text(&v, "kind")
    };
    let (format, format_input) = map_format(&text(&v, "format"), &text(&v, "format_input"))?;
    let metrics = g
        .get("metrics")
        .and_then(Value::as_array)
        .map(|ms| ms.iter().map(metric).collect::<Result<Vec<_>, _>>())
        .transpose()?
        .unwrap_or_default();
    // AppSignal groups by every tag filtered with `*`: one line per value.
    let metrics = metrics
        .into_iter()
        .map(|mut m| {
            m.group_by = m
                .tags
                .iter()
                .filter(|(_, v)| v.as_str() == "*")
                .map(|(k, _)| k.clone())
                .collect();
            m
        })
        .collect();
    let label = text(&v, "line_label");
    Ok(Graph {
        title: text(&v, "title"),
        description: text(&v, "description"),
        chart: map_chart(&display)?,
        value: None,
        format,
        format_input,
        label: (!label.is_empty()).then_some(label),
        draw_null_as_zero: g
            .get("draw_null_as_zero")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        metrics,
    })
}

fn graphs(list: Option<&Value>) -> Result<Vec<Graph>, String> {
    let mut out = Vec::new();
    for (i, g) in list
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let obj = g
            .as_object()
            .ok_or(format!("graph {} is not a map", i + 1))?;
        out.push(graph(obj).map_err(|e| format!("graph {} ({:?}): {e}", i + 1, text(g, "title")))?);
    }
    Ok(out)
}

fn finish(mut d: Dashboard) -> Result<Dashboard, String> {
    d.validate()?;
    Ok(d)
}

/// `{"title", "description", "visuals": [...]}` (the inside of `dashboard`).
pub fn from_json(d: &Value) -> Result<Dashboard, String> {
    let list = d.get("visuals").or_else(|| d.get("graphs"));
    finish(Dashboard {
        title: text(d, "title"),
        description: text(d, "description"),
        env: None,
        graphs: graphs(list)?,
    })
}

/// `{title, graphs: [{title, line_label, format, metrics: [{name, fields, tags}]}]}`.
pub fn from_old_yaml(d: &Value) -> Result<Dashboard, String> {
    let mut title = text(d, "title");
    if title.is_empty() {
        title = "Imported dashboard".into();
    }
    finish(Dashboard {
        title,
        description: text(d, "description"),
        env: None,
        graphs: graphs(d.get("graphs"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_map_to_ours() {
        for (theirs, ours) in [
            ("GAUGE", "last"),
            ("COUNTER", "sum"),
            ("MEAN", "mean"),
            ("COUNT", "count"),
            ("P90", "p90"),
            ("P95", "p95"),
            ("p99", "p99"),
        ] {
            assert_eq!(map_field(theirs).unwrap(), ours);
        }
        assert!(map_field("HISTOGRAM").is_err());
    }

    #[test]
    fn a_native_definition_is_left_alone() {
        let v = json!({"title": "t", "graphs": [{"title": "g", "metrics": [{"name": "m", "fields": ["p95"], "tags": {"region": "eu"}}]}]});
        assert!(matches!(detect(v).unwrap(), Detected::Native(_)));
    }

    #[test]
    fn visuals_become_graphs() {
        let v = json!({"dashboard": {"title": "Shop", "visuals": [{
            "title": "Items", "line_label": "%name% %region%", "display": "AREA",
            "format": "size", "format_input": "megabyte", "draw_null_as_zero": true,
            "metrics": [{"name": "order_item_count", "fields": [{"field": "P95"}, {"field": "MEAN"}],
                         "tags": [{"key": "region", "value": "*"}, {"key": "payment", "value": "card"}]}]}]}});
        let Detected::AppSignal(d) = detect(v).unwrap() else {
            panic!()
        };
        let g = &d.graphs[0];
        assert_eq!(
            (g.chart, g.format, g.format_input.as_deref()),
            (Chart::Area, Format::Size, Some("MiB"))
        );
        assert!(g.draw_null_as_zero);
        assert_eq!(g.metrics[0].fields, ["p95", "mean"]);
        assert_eq!(g.metrics[0].group_by, ["region"]);
        assert_eq!(g.metrics[0].tags["payment"], "card");
    }
}
