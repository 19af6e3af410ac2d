//! An alert definition as users write it (JSON or YAML, same keys) and its
//! validation. Unknown keys are refused so a typo never silently disables
//! part of an alert.

use minutely_core::tags::TagFilter;
use minutely_core::Field;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest warm-up, cool-down, reminder interval or rolling window: a week
/// of minutes. Longer is almost surely a unit mistake (seconds for minutes).
pub const MAX_MINUTES: u32 = 7 * 24 * 60;
/// Channels per alert: bounds the notifications one event fans out to.
pub const MAX_CHANNELS: usize = 16;
/// Addresses per email channel.
pub const MAX_EMAIL_TO: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertDef {
    pub name: String,
    /// The app whose data is watched; the API fills it in when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// One env, or every env (each series of each env on its own) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    pub metric: String,
    /// The field to watch; by kind when absent (counter sum, gauge last,
    /// distribution mean), as in queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Tag filters; values may hold `*`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    pub condition: Condition,
    #[serde(default)]
    pub warmup_minutes: u32,
    #[serde(default)]
    pub cooldown_minutes: u32,
    /// Re-notify every this many minutes while open; 0 never does.
    #[serde(default)]
    pub reminder_minutes: u32,
    #[serde(default)]
    pub no_data: NoData,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<Channel>,
    /// A disabled alert is not evaluated; its state is kept.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What a minute without data means for a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoData {
    /// The value is 0 (right for counters: no orders is zero orders).
    #[default]
    Zero,
    /// The minute is skipped: the state and its counts stay as they were.
    Keep,
    /// The condition counts as holding: a "no data" incident opens after
    /// the warm-up.
    Alert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }

    /// The worse of two values for this condition: the peak of an
    /// incident is the lowest value for `<` and `<=`, else the highest.
    pub fn worse(self, a: f64, b: f64) -> f64 {
        match self {
            Op::Lt | Op::Le => a.min(b),
            _ => a.max(b),
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// A threshold or a baseline condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawCondition", into = "RawCondition")]
pub enum Condition {
    /// `value op threshold`.
    Threshold { op: Op, threshold: f64 },
    /// `(value - week_ago) / week_ago * 100 op change_pct`, where
    /// `week_ago` is the same minute seven days earlier.
    WeekAgo { op: Op, change_pct: f64 },
    /// `value op mean ± deviations * stddev` of the `window_minutes`
    /// minutes before (`+` for `>`/`>=`, `-` for `<`/`<=`).
    Rolling {
        op: Op,
        window_minutes: u32,
        deviations: f64,
    },
}

impl Condition {
    pub fn op(&self) -> Op {
        match self {
            Condition::Threshold { op, .. }
            | Condition::WeekAgo { op, .. }
            | Condition::Rolling { op, .. } => *op,
        }
    }

    /// Minutes of data before an evaluated minute that judging it needs.
    pub fn lookback_minutes(&self) -> u32 {
        match self {
            Condition::Rolling { window_minutes, .. } => *window_minutes,
            _ => 0,
        }
    }

    /// Human text, for notifications: `< 1`, `-50% vs a week ago`, ...
    pub fn describe(&self) -> String {
        match self {
            Condition::Threshold { op, threshold } => format!("{} {threshold}", op.symbol()),
            Condition::WeekAgo { op, change_pct } => {
                format!("change vs a week ago {} {change_pct}%", op.symbol())
            }
            Condition::Rolling {
                op,
                window_minutes,
                deviations,
            } => format!(
                "{} {window_minutes}-minute mean {} {deviations} standard deviations",
                op.symbol(),
                if matches!(op, Op::Lt | Op::Le) {
                    "-"
                } else {
                    "+"
                }
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baseline: Option<String>,
    op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deviations: Option<f64>,
}

impl TryFrom<RawCondition> for Condition {
    type Error = String;
    fn try_from(r: RawCondition) -> Result<Condition, String> {
        let finite = |name: &str, v: Option<f64>| match v {
            Some(v) if v.is_finite() => Ok(v),
            Some(_) => Err(format!("condition {name} must be a finite number")),
            None => Err(format!("condition needs {name}")),
        };
        let unexpected = |name: &str, present: bool| {
            if present {
                Err(format!("condition key {name} does not fit this condition"))
            } else {
                Ok(())
            }
        };
        match r.baseline.as_deref() {
            None => {
                unexpected("change_pct", r.change_pct.is_some())?;
                unexpected("window_minutes", r.window_minutes.is_some())?;
                unexpected("deviations", r.deviations.is_some())?;
                Ok(Condition::Threshold {
                    op: r.op,
                    threshold: finite("threshold", r.threshold)?,
                })
            }
            Some("week_ago") => {
                unexpected("threshold", r.threshold.is_some())?;
                unexpected("window_minutes", r.window_minutes.is_some())?;
                unexpected("deviations", r.deviations.is_some())?;
                Ok(Condition::WeekAgo {
                    op: r.op,
                    change_pct: finite("change_pct", r.change_pct)?,
                })
            }
            Some("rolling") => {
                unexpected("threshold", r.threshold.is_some())?;
                unexpected("change_pct", r.change_pct.is_some())?;
                let window = r
                    .window_minutes
                    .ok_or("a rolling baseline needs window_minutes")?;
                if !(2..=MAX_MINUTES).contains(&window) {
                    return Err(format!(
                        "window_minutes must be 2..{MAX_MINUTES}, got {window}"
                    ));
                }
                let deviations = finite("deviations", r.deviations)?;
                if deviations < 0.0 {
                    return Err("deviations must not be negative".into());
                }
                if matches!(r.op, Op::Eq | Op::Ne) {
                    return Err("a rolling baseline takes >, >=, < or <=".into());
                }
                Ok(Condition::Rolling {
                    op: r.op,
                    window_minutes: window,
                    deviations,
                })
            }
            Some(other) => Err(format!(
                "unknown baseline {other:?}: use week_ago or rolling"
            )),
        }
    }
}

impl From<Condition> for RawCondition {
    fn from(c: Condition) -> RawCondition {
        let mut r = RawCondition {
            baseline: None,
            op: c.op(),
            threshold: None,
            change_pct: None,
            window_minutes: None,
            deviations: None,
        };
        match c {
            Condition::Threshold { threshold, .. } => r.threshold = Some(threshold),
            Condition::WeekAgo { change_pct, .. } => {
                r.baseline = Some("week_ago".into());
                r.change_pct = Some(change_pct);
            }
            Condition::Rolling {
                window_minutes,
                deviations,
                ..
            } => {
                r.baseline = Some("rolling".into());
                r.window_minutes = Some(window_minutes);
                r.deviations = Some(deviations);
            }
        }
        r
    }
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Channel {
    /// JSON POST, signed with HMAC-SHA256 of the body when a secret is set.
    Webhook {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// Slack-compatible incoming webhook: `{"text": "..."}`.
    Slack { url: String },
    /// Email through the server's SMTP settings.
    Email { to: Vec<String> },
}

impl Channel {
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Slack { .. } => "slack",
            Channel::Email { .. } => "email",
        }
    }

    /// Checks the URL, secret or addresses (also for a test notification
    /// sent through a channel that is not part of a stored alert).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Channel::Webhook { url, secret } => {
                check_url(url)?;
                if secret.as_deref().is_some_and(str::is_empty) {
                    return Err("a webhook secret must not be empty".into());
                }
            }
            Channel::Slack { url } => check_url(url)?,
            Channel::Email { to } => {
                if to.is_empty() || to.len() > MAX_EMAIL_TO {
                    return Err(format!("an email channel needs 1-{MAX_EMAIL_TO} addresses"));
                }
                for a in to {
                    let ok = a.len() <= 254
                        && a.split_once('@').is_some_and(|(u, d)| {
                            !u.is_empty() && d.contains('.') && !d.starts_with('.')
                        })
                        && !a.chars().any(|c| c.is_whitespace() || c == '<' || c == '>');
                    if !ok {
                        return Err(format!("{a:?} is not an email address"));
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2_048
        && !url.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "channel url {url:?} must be an http:// or https:// URL"
        ))
    }
}

impl AlertDef {
    /// Checks everything that does not need the store (the metric's kind
    /// is checked by the API when the metric exists).
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err("name must be 1-200 characters".into());
        }
        minutely_core::validate::validate_name(&self.metric).map_err(|e| format!("metric: {e}"))?;
        if let Some(f) = &self.field {
            Field::parse(f)?;
        }
        for (k, v) in &self.tags {
            TagFilter::parse(&format!("{k}:{v}"))?;
        }
        for (what, m) in [
            ("warmup_minutes", self.warmup_minutes),
            ("cooldown_minutes", self.cooldown_minutes),
            ("reminder_minutes", self.reminder_minutes),
        ] {
            if m > MAX_MINUTES {
                return Err(format!("{what} must be at most {MAX_MINUTES}, got {m}"));
            }
        }
        if self.description.len() > 10_000 {
            return Err("description must be at most 10,000 bytes".into());
        }
        if self.channels.len() > MAX_CHANNELS {
            return Err(format!("at most {MAX_CHANNELS} channels"));
        }
        for c in &self.channels {
            c.validate()?;
        }
        Ok(())
    }

    pub fn filters(&self) -> Vec<TagFilter> {
        self.tags
            .iter()
            .map(|(k, v)| TagFilter {
                key: k.clone(),
                pattern: v.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"name": "orders stopped", "app": "default", "env": "production",
 "metric": "order_count", "field": "sum", "tags": {"region": "*"},
 "condition": {"op": "<", "threshold": 1},
 "warmup_minutes": 15, "cooldown_minutes": 5, "reminder_minutes": 60,
 "no_data": "zero",
 "channels": [{"type": "webhook", "url": "https://hooks.example.com/x", "secret": "s3cret"},
              {"type": "slack", "url": "https://hooks.slack.example/T0"},
              {"type": "email", "to": ["ops@example.com"]}]}"#;

    #[test]
    fn design_example_parses_and_round_trips() {
        let a: AlertDef = serde_json::from_str(EXAMPLE).unwrap();
        a.validate().unwrap();
        assert_eq!(
            a.condition,
            Condition::Threshold {
                op: Op::Lt,
                threshold: 1.0
            }
        );
        assert_eq!(a.channels.len(), 3);
        let back: AlertDef = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a, back);
        let yaml = serde_norway::to_string(&a).unwrap();
        let from_yaml: AlertDef = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(a, from_yaml);
    }

    #[test]
    fn baselines_parse() {
        let c: Condition =
            serde_json::from_str(r#"{"baseline": "week_ago", "op": "<", "change_pct": -50}"#)
                .unwrap();
        assert_eq!(
            c,
            Condition::WeekAgo {
                op: Op::Lt,
                change_pct: -50.0
            }
        );
        let c: Condition = serde_json::from_str(
            r#"{"baseline": "rolling", "window_minutes": 60, "op": ">", "deviations": 3}"#,
        )
        .unwrap();
        assert_eq!(c.lookback_minutes(), 60);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"baseline": "rolling", "window_minutes": 60, "op": ">", "deviations": 3.0})
        );
    }

    #[test]
    fn bad_definitions_say_why() {
        let bad = |s: &str| {
            serde_json::from_str::<Condition>(s)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(r#"{"op": "<"}"#).contains("threshold"));
        assert!(bad(r#"{"op": "=<", "threshold": 1}"#).contains("unknown variant"));
        assert!(bad(r#"{"baseline": "daily", "op": "<"}"#).contains("unknown baseline"));
        assert!(bad(r#"{"op": "<", "threshold": 1, "deviations": 2}"#).contains("deviations"));
        assert!(bad(
            r#"{"baseline": "rolling", "op": "==", "window_minutes": 5, "deviations": 1}"#
        )
        .contains("rolling"));
        let mut a: AlertDef = serde_json::from_str(EXAMPLE).unwrap();
        a.warmup_minutes = MAX_MINUTES + 1;
        assert!(a.validate().unwrap_err().contains("warmup_minutes"));
        a.warmup_minutes = 1;
        a.channels = vec![Channel::Webhook {
            url: "ftp://x".into(),
            secret: None,
        }];
        assert!(a.validate().unwrap_err().contains("http"));
        a.channels = vec![Channel::Email {
            to: vec!["nobody".into()],
        }];
        assert!(a.validate().unwrap_err().contains("email"));
        a.channels.clear();
        a.metric = "9bad name".into();
        assert!(a.validate().unwrap_err().contains("metric"));
        let typo = EXAMPLE.replace("warmup_minutes", "warmup_mins");
        assert!(serde_json::from_str::<AlertDef>(&typo).is_err());
    }
}
