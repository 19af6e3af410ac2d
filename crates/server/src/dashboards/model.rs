//! The dashboard definition (DESIGN section 4): its shape, defaults and
//! validation, and reading it from JSON or YAML.
//!
//! Fields that hold their default are left out when written, so a YAML
//! export read back and exported again is identical.

use minutely_core::query::Across;
use minutely_core::Field;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bounds of one definition: far above a readable dashboard, small enough
/// that one refresh stays one modest `POST /api/v1/query`.
pub const MAX_GRAPHS: usize = 100;
pub const MAX_METRICS_PER_GRAPH: usize = 20;
pub const MAX_FIELDS_PER_METRIC: usize = 10;
const MAX_TITLE: usize = 200;
const MAX_TEXT: usize = 4_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Only this env; all envs when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default)]
    pub graphs: Vec<Graph>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub chart: Chart,
    /// For `chart: number`: which one value of the range to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<NumberValue>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub format: Format,
    /// Unit of the stored values for `duration` and `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_input: Option<String>,
    /// Line label template: `%name%`, `%field%` and tag keys as `%region%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Draw a minute without data as 0 instead of repeating the last value.
    #[serde(default, skip_serializing_if = "is_default")]
    pub draw_null_as_zero: bool,
    pub metrics: Vec<MetricQuery>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricQuery {
    /// A metric name, or a pattern with `*` matched against the catalogue.
    pub name: String,
    /// Fields to draw; the kind's default field when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Tag filters; a value may use `*`. A key not named means any value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// How gauges combine across series: sum, mean, min, max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub across: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chart {
    #[default]
    Line,
    Area,
    RelativeArea,
    Number,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberValue {
    First,
    Last,
    Mean,
    Sum,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Number,
    Percent,
    Throughput,
    Duration,
    Size,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Units a `duration` graph's values may be stored in.
pub const DURATION_UNITS: [&str; 6] = ["ns", "us", "ms", "s", "min", "h"];
/// Units a `size` graph's values may be stored in (powers of 1024).
pub const SIZE_UNITS: [&str; 5] = ["bit", "byte", "KiB", "MiB", "GiB"];

/// Maps the unit spellings other tools export to ours.
pub fn normalize_unit(format: Format, unit: &str) -> Option<&'static str> {
    let u = unit.trim().to_ascii_lowercase();
    let found = match format {
        Format::Duration => match u.as_str() {
            "ns" | "nanosecond" | "nanoseconds" => "ns",
            "us" | "µs" | "microsecond" | "microseconds" => "us",
            "ms" | "millisecond" | "milliseconds" => "ms",
            "s" | "sec" | "second" | "seconds" => "s",
            "min" | "minute" | "minutes" => "min",
            "h" | "hour" | "hours" => "h",
            _ => return None,
        },
        Format::Size => match u.as_str() {
            "bit" | "bits" => "bit",
            "b" | "byte" | "bytes" => "byte",
            "kib" | "kb" | "kilobyte" | "kilobytes" => "KiB",
            "mib" | "mb" | "megabyte" | "megabytes" => "MiB",
            "gib" | "gb" | "gigabyte" | "gigabytes" => "GiB",
            _ => return None,
        },
        _ => return None,
    };
    Some(found)
}

fn check_len(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.chars().count() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(format!("{what} holds control characters"));
    }
    Ok(())
}

/// `[A-Za-z0-9_.:-]` and `*`, 1-200 characters.
fn check_pattern(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-' | b'*'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "metric name {name:?} is invalid: use 1-200 characters of A-Z a-z 0-9 _ . : - and * as a wildcard"
        ))
    }
}

impl Dashboard {
    /// Checks every rule; the message names the graph and metric at fault.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.title.trim().is_empty() {
            return Err("title must not be empty".into());
        }
        check_len("title", &self.title, MAX_TITLE)?;
        check_len("description", &self.description, MAX_TEXT)?;
        if let Some(env) = &self.env {
            if env.is_empty()
                || env.len() > 64
                || !env
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            {
                return Err(format!(
                    "env {env:?} is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -"
                ));
            }
        }
        if self.graphs.len() > MAX_GRAPHS {
            return Err(format!(
                "the dashboard has {} graphs; at most {MAX_GRAPHS} are allowed",
                self.graphs.len()
            ));
        }
        for (i, g) in self.graphs.iter_mut().enumerate() {
            g.validate()
                .map_err(|e| format!("graph {} ({:?}): {e}", i + 1, g.title))?;
        }
        Ok(())
    }
}

impl Graph {
    fn validate(&mut self) -> Result<(), String> {
        if self.title.trim().is_empty() {
            return Err("title must not be empty".into());
        }
        check_len("title", &self.title, MAX_TITLE)?;
        check_len("description", &self.description, MAX_TEXT)?;
        if let Some(label) = &self.label {
            check_len("label", label, MAX_TITLE)?;
        }
        if self.value.is_some() && self.chart != Chart::Number {
            return Err("value applies only to chart: number".into());
        }
        match (self.format, &self.format_input) {
            (Format::Duration | Format::Size, Some(unit)) => {
                let units = if self.format == Format::Duration {
                    DURATION_UNITS.join(", ")
                } else {
                    SIZE_UNITS.join(", ")
                };
                let found = normalize_unit(self.format, unit)
                    .ok_or_else(|| format!("format_input {unit:?} is not a unit: use {units}"))?;
                self.format_input = Some(found.into());
            }
            (Format::Duration | Format::Size, None) => {}
            (_, Some(_)) => {
                return Err("format_input applies only to format duration or size".into())
            }
            (_, None) => {}
        }
        if self.metrics.is_empty() {
            return Err("a graph needs at least one metric".into());
        }
        if self.metrics.len() > MAX_METRICS_PER_GRAPH {
            return Err(format!(
                "{} metrics; at most {MAX_METRICS_PER_GRAPH} are allowed per graph",
                self.metrics.len()
            ));
        }
        for m in &self.metrics {
            m.validate()
                .map_err(|e| format!("metric {:?}: {e}", m.name))?;
        }
        Ok(())
    }
}

impl MetricQuery {
    fn validate(&self) -> Result<(), String> {
        check_pattern(&self.name)?;
        if self.fields.len() > MAX_FIELDS_PER_METRIC {
            return Err(format!(
                "{} fields; at most {MAX_FIELDS_PER_METRIC} are allowed",
                self.fields.len()
            ));
        }
        for f in &self.fields {
            Field::parse(f)?;
        }
        let filters: BTreeMap<String, String> = self.tags.clone();
        minutely_core::validate::validate_tags(&filters).map_err(|e| e.to_string())?;
        for k in &self.group_by {
            if k.is_empty() || k.len() > 64 {
                return Err(format!("group_by key {k:?} is invalid"));
            }
        }
        if let Some(a) = &self.across {
            Across::parse(a)?;
        }
        Ok(())
    }
}

/// The keys a dashboard answer carries besides its definition; accepted and
/// ignored on input so that a fetched dashboard can be sent back as it is.
pub const SERVER_KEYS: [&str; 4] = ["id", "app", "created", "updated"];

/// Reads a native definition from a JSON value, naming the graph at fault.
pub fn from_value(mut v: serde_json::Value) -> Result<Dashboard, String> {
    let obj = v
        .as_object_mut()
        .ok_or("a dashboard must be an object with title and graphs")?;
    for k in SERVER_KEYS {
        obj.remove(k);
    }
    // Graphs one by one, so an error says which one is wrong.
    let graphs = match obj.remove("graphs") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items,
        Some(_) => return Err("graphs must be a list".into()),
    };
    let mut d: Dashboard = serde_json::from_value(v).map_err(|e| e.to_string())?;
    for (i, g) in graphs.into_iter().enumerate() {
        let title = g
            .get("title")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_string();
        let graph: Graph =
            serde_json::from_value(g).map_err(|e| format!("graph {} ({title:?}): {e}", i + 1))?;
        d.graphs.push(graph);
    }
    d.validate()?;
    Ok(d)
}

/// The YAML text of a definition.
pub fn to_yaml(d: &Dashboard) -> Result<String, String> {
    serde_norway::to_string(d).map_err(|e| e.to_string())
}

/// Parses YAML to a JSON value (YAML keys that are not strings are refused).
pub fn yaml_value(text: &[u8]) -> Result<serde_json::Value, String> {
    serde_norway::from_slice(text).map_err(|e| format!("not valid YAML: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_left_out_and_come_back() {
        let d = from_value(json!({"title": "Shop", "graphs": [
            {"title": "Orders", "metrics": [{"name": "order_count"}]},
            {"title": "Items", "chart": "number", "value": "mean", "format": "duration",
             "format_input": "millisecond", "label": "%name% %region%",
             "metrics": [{"name": "order_*", "fields": ["p95"], "tags": {"region": "eu-*"}, "group_by": ["region"]}]}]}))
        .unwrap();
        assert_eq!(d.graphs[1].format_input.as_deref(), Some("ms"));
        let yaml = to_yaml(&d).unwrap();
        assert!(!yaml.contains("chart: line"), "{yaml}");
        let again = from_value(yaml_value(yaml.as_bytes()).unwrap()).unwrap();
        assert_eq!(again, d);
        assert_eq!(to_yaml(&again).unwrap(), yaml);
    }

    #[test]
    fn errors_name_the_graph_and_metric() {
        let err = |v| from_value(v).unwrap_err();
        assert_eq!(err(json!({"graphs": []})), "missing field `title`");
        assert!(
            err(json!({"title": "x", "graphs": [{"title": "g", "metrics": [], "colour": 1}]}))
                .starts_with("graph 1 (\"g\"): unknown field `colour`")
        );
        assert_eq!(
            err(json!({"title": "x", "graphs": [{"title": "g", "metrics": []}]})),
            "graph 1 (\"g\"): a graph needs at least one metric"
        );
        assert!(err(json!({"title": "x", "graphs": [{"title": "g", "metrics": [{"name": "m", "fields": ["p1x"]}]}]}))
            .starts_with("graph 1 (\"g\"): metric \"m\": unknown field \"p1x\""));
        assert!(err(json!({"title": "x", "graphs": [{"title": "g", "format": "size", "format_input": "parsec", "metrics": [{"name": "m"}]}]}))
            .contains("format_input \"parsec\" is not a unit"));
        assert!(err(json!({"title": "x", "graphs": [{"title": "g", "value": "sum", "metrics": [{"name": "m"}]}]}))
            .contains("value applies only to chart: number"));
        assert!(err(
            json!({"title": "x", "graphs": [{"title": "g", "metrics": [{"name": "bad name"}]}]})
        )
        .contains("metric name \"bad name\" is invalid"));
        assert!(err(json!({"title": " "})).contains("title must not be empty"));
    }

    #[test]
    fn server_keys_are_ignored_on_input() {
        let d =
            from_value(json!({"id": "x", "app": "a", "created": 1, "updated": 2, "title": "t"}))
                .unwrap();
        assert_eq!(d.title, "t");
    }
}
