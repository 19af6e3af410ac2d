//! StatsD and DogStatsD: the pure line parser.
//!
//! A packet holds lines separated by `\n` (a `\r` before it is ignored).
//! A line is `name:value[:value...]|type[|@rate][|#tag,k:v][|T<unix secs>][|c:<container>]`:
//!
//! | type | meaning | becomes |
//! |---|---|---|
//! | `c` | add to a counter; `@rate` scales it by `1/rate` | counter |
//! | `g` | set a gauge; a value with a sign (`+3`, `-2`) changes the last value | gauge |
//! | `ms`, `h`, `d` | one observation; `@rate` weighs it `1/rate` | distribution |
//! | `s` | a member of a set: the count of distinct members per minute | counter |
//!
//! Several values may share one line (`name:1:2:3|d`, DogStatsD 1.1) except
//! for sets, whose member is the whole text after the first `:`. Tags
//! without a value (`|#canary`) get the value `true`. Events (`_e{`) and
//! service checks (`_sc|`) are recognised and refused as unsupported.
//!
//! Parsing is pure and borrows from the packet; every refusal is a
//! [`ParseError`] with a short reason for the counters on `/metrics`, and a
//! bad line never affects the other lines of its packet.

pub mod aggregate;
pub mod listener;

use minutely_core::validate::{validate_name, MAX_TAG_KEY_LEN, MAX_TAG_VALUE_LEN};

/// Tags a line may carry before routing takes `app` and `env` out: the
/// point limit (16) plus those two. The aggregator enforces the limit of 16.
pub const MAX_LINE_TAGS: usize = minutely_core::validate::MAX_TAGS + 2;
/// Values packed into one line (`name:1:2:3|d`): DogStatsD clients pack
/// a few dozen at most; the bound keeps one line's work small.
pub const MAX_PACKED_VALUES: usize = 1_024;

/// The StatsD type of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Counter,
    Gauge,
    Timer,
    Histogram,
    Distribution,
    Set,
}

impl Type {
    fn parse(s: &[u8]) -> Option<Type> {
        Some(match s {
            b"c" => Type::Counter,
            b"g" => Type::Gauge,
            b"ms" => Type::Timer,
            b"h" => Type::Histogram,
            b"d" => Type::Distribution,
            b"s" => Type::Set,
            _ => return None,
        })
    }
}

/// Why a line was refused; `reason()` labels the drop counter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error("line has no `:` between name and value")]
    NoValue,
    #[error("line has no `|type`")]
    NoType,
    #[error("unknown metric type {0:?}: use c, g, ms, h, d or s")]
    BadType(String),
    #[error("value {0:?} is not a finite number")]
    BadValue(String),
    #[error("more than {MAX_PACKED_VALUES} values in one line")]
    TooManyValues,
    #[error("sample rate {0:?} must be a number in (0, 1]")]
    BadRate(String),
    #[error("{0}")]
    BadName(String),
    #[error("tag {0:?} is invalid: keys are 1-64 characters of A-Z a-z 0-9 _ . : / -, values 1-256 characters without control characters")]
    BadTag(String),
    #[error("more than {MAX_LINE_TAGS} tags")]
    TooManyTags,
    #[error("timestamp {0:?} is not whole unix seconds")]
    BadTimestamp(String),
    #[error("unknown field {0:?} after the type")]
    BadField(String),
    #[error("the same field appears twice")]
    RepeatedField,
    #[error("DogStatsD events and service checks are not metrics; they are not supported")]
    Unsupported,
}

impl ParseError {
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::NotUtf8 => "not_utf8",
            ParseError::NoValue | ParseError::NoType => "malformed",
            ParseError::BadType(_) => "bad_type",
            ParseError::BadValue(_) | ParseError::TooManyValues => "bad_value",
            ParseError::BadRate(_) => "bad_rate",
            ParseError::BadName(_) => "bad_name",
            ParseError::BadTag(_) | ParseError::TooManyTags => "bad_tags",
            ParseError::BadTimestamp(_) => "bad_timestamp",
            ParseError::BadField(_) | ParseError::RepeatedField => "malformed",
            ParseError::Unsupported => "unsupported",
        }
    }
}

/// One parsed line, borrowing from the packet. Values and tags were checked
/// while parsing; the iterators only split them again.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub name: &'a str,
    pub ty: Type,
    /// The text between the first `:` and the first `|`.
    values: &'a str,
    /// 1.0 unless `@rate` was given.
    pub rate: f64,
    /// The text after `#`, comma separated.
    tags: &'a str,
    /// `|T<secs>`: the client's timestamp.
    pub ts: Option<f64>,
}

/// One value of a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    /// A gauge value with a sign: add it to the gauge's last value.
    Delta(f64),
    /// A set member.
    Member(&'a str),
}

impl<'a> Line<'a> {
    /// The line's values, in order.
    pub fn values(&self) -> impl Iterator<Item = Value<'a>> + '_ {
        let whole = (self.ty == Type::Set).then_some(Value::Member(self.values));
        let numbers = (self.ty != Type::Set)
            .then(|| {
                self.values
                    .split(':')
                    .filter_map(|v| number(v, self.ty).ok())
            })
            .into_iter()
            .flatten();
        whole.into_iter().chain(numbers)
    }

    /// The tags as (key, value); a bare tag has the value `true`.
    pub fn tags(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let tags = self.tags;
        tags.split(',').filter(|t| !t.is_empty()).map(split_tag)
    }
}

fn split_tag(t: &str) -> (&str, &str) {
    t.split_once(':').unwrap_or((t, "true"))
}

fn number(v: &str, ty: Type) -> Result<Value<'static>, ParseError> {
    let bad = || ParseError::BadValue(v.chars().take(40).collect());
    // Rust also reads "inf", "NaN" and "infinity"; StatsD values are plain
    // decimal numbers, so anything else is refused before parsing.
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return Err(bad());
    }
    let x: f64 = v.parse().map_err(|_| bad())?;
    if !x.is_finite() {
        return Err(bad());
    }
    let signed = v.starts_with('+') || v.starts_with('-');
    Ok(if ty == Type::Gauge && signed {
        Value::Delta(x)
    } else {
        Value::Number(x)
    })
}

fn tag_ok(key: &str, value: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_TAG_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'))
        && !value.is_empty()
        && value.chars().count() <= MAX_TAG_VALUE_LEN
        && !value.chars().any(char::is_control)
}

/// Parses one line (without its `\n`).
pub fn parse_line(raw: &[u8]) -> Result<Line<'_>, ParseError> {
    let line = std::str::from_utf8(raw).map_err(|_| ParseError::NotUtf8)?;
    if line.starts_with("_e{") || line.starts_with("_sc|") {
        return Err(ParseError::Unsupported);
    }
    let (name, rest) = line.split_once(':').ok_or(ParseError::NoValue)?;
    validate_name(name).map_err(|e| ParseError::BadName(e.to_string()))?;
    let mut fields = rest.split('|');
    let values = fields.next().unwrap_or_default();
    let ty_text = fields.next().ok_or(ParseError::NoType)?;
    let ty = Type::parse(ty_text.as_bytes())
        .ok_or_else(|| ParseError::BadType(ty_text.chars().take(20).collect()))?;
    let mut line = Line {
        name,
        ty,
        values,
        rate: 1.0,
        tags: "",
        ts: None,
    };
    let (mut seen_rate, mut seen_tags, mut seen_ts, mut seen_container) =
        (false, false, false, false);
    for field in fields {
        let once = |seen: &mut bool| {
            if std::mem::replace(seen, true) {
                Err(ParseError::RepeatedField)
            } else {
                Ok(())
            }
        };
        if let Some(r) = field.strip_prefix('@') {
            once(&mut seen_rate)?;
            let rate: f64 = r
                .parse()
                .ok()
                .filter(|x: &f64| *x > 0.0 && *x <= 1.0)
                .ok_or_else(|| ParseError::BadRate(r.chars().take(20).collect()))?;
            line.rate = rate;
        } else if let Some(t) = field.strip_prefix('#') {
            once(&mut seen_tags)?;
            let mut n = 0;
            for tag in t.split(',').filter(|t| !t.is_empty()) {
                n += 1;
                if n > MAX_LINE_TAGS {
                    return Err(ParseError::TooManyTags);
                }
                let (k, v) = split_tag(tag);
                if !tag_ok(k, v) {
                    return Err(ParseError::BadTag(tag.chars().take(80).collect()));
                }
            }
            line.tags = t;
        } else if let Some(ts) = field.strip_prefix('T') {
            once(&mut seen_ts)?;
            let secs: i64 = ts
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| ParseError::BadTimestamp(ts.chars().take(20).collect()))?;
            line.ts = Some(secs as f64);
        } else if field.starts_with("c:") {
            // DogStatsD origin detection: the sender's container id. minutely
            // has no use for it.
            once(&mut seen_container)?;
        } else {
            return Err(ParseError::BadField(field.chars().take(20).collect()));
        }
    }
    if ty == Type::Set {
        if values.is_empty() || values.chars().any(char::is_control) {
            return Err(ParseError::BadValue(values.chars().take(40).collect()));
        }
    } else {
        for (i, v) in values.split(':').enumerate() {
            if i >= MAX_PACKED_VALUES {
                return Err(ParseError::TooManyValues);
            }
            number(v, ty)?;
        }
    }
    Ok(line)
}

/// Splits a packet into lines and parses each one; `f` sees every result in
/// order. Empty lines (a trailing `\n`) are skipped.
pub fn parse_packet<'a>(packet: &'a [u8], mut f: impl FnMut(Result<Line<'a>, ParseError>)) {
    for raw in packet.split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        f(parse_line(raw));
    }
}

#[cfg(test)]
mod tests;
