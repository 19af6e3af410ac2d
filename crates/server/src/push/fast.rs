//! The one-pass parse of a push body in its usual shape: plain strings,
//! plain numbers, single values, every point valid. Names and tags are
//! read as slices of the body and copied once, into the finished point.
//!
//! Anything else (an escape, an exponent, a summary, a null, an unknown or
//! repeated field, a bad point) gives `None`, and the body goes through
//! [`super::parse_push`]'s general path, which words every error. So this
//! parse only ever answers what the general path would answer.

use super::{validate_env, ParsedPush};
use minutely_core::validate::{validate_name, validate_tag, MAX_FUTURE_SECS, MAX_TAGS};
use minutely_core::{Kind, Point, PointValue, Tags};
use std::sync::Arc;

/// Powers of ten that are exact in an f64 (up to 1e15 is all we need).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Digits of a number we convert ourselves: below 2^53, so exact.
const MAX_DIGITS: usize = 15;

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_ws(&mut self) {
        let b = self.bytes();
        while self.at < b.len() && matches!(b[self.at], b' ' | b'\n' | b'\r' | b'\t') {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        self.skip_ws();
        let c = *self.bytes().get(self.at)?;
        self.at += 1;
        Some(c)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let b = self.bytes();
        let start = self.at;
        let len = plain_len(&b[start..])?;
        if b[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Both ends are ASCII quotes, so this is on character boundaries.
        self.text.get(start..start + len)
    }

    /// A string, or `null` (an absent optional field).
    fn string_or_null(&mut self) -> Option<Option<&'a str>> {
        self.skip_ws();
        if self.bytes().get(self.at) == Some(&b'n') {
            let end = self.at + 4;
            (self.text.get(self.at..end)? == "null").then_some(())?;
            self.at = end;
            return Some(None);
        }
        self.string().map(Some)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?` with at most 15 digits: the
    /// correctly rounded value, as serde_json gives it.
    fn number(&mut self) -> Option<f64> {
        self.skip_ws();
        let b = self.bytes();
        let mut i = self.at;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int_digits = i - int_start;
        if int_digits == 0 || (int_digits > 1 && b[int_start] == b'0') {
            return None;
        }
        let mut frac_digits = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let frac_start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac_digits = i - frac_start;
            if frac_digits == 0 {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) || int_digits + frac_digits > MAX_DIGITS {
            return None;
        }
        let mut sig: u64 = 0;
        for &c in &b[int_start..i] {
            if c != b'.' {
                sig = sig * 10 + u64::from(c - b'0');
            }
        }
        self.at = i;
        // Both operands are exact, so the one division rounds correctly.
        let v = sig as f64 / POW10[frac_digits];
        Some(if negative { -v } else { v })
    }

    /// After a member: `true` for `,`, `false` for `close`.
    fn more(&mut self, close: u8) -> Option<bool> {
        match self.next()? {
            b',' => Some(true),
            c if c == close => Some(false),
            _ => None,
        }
    }

    /// Consumes `close` if it comes next (an empty object or array).
    fn empty(&mut self, close: u8) -> bool {
        self.skip_ws();
        if self.bytes().get(self.at) == Some(&close) {
            self.at += 1;
            true
        } else {
            false
        }
    }
}

/// Where the first quote, backslash or control character of `b` is (the
/// end of a plain string), looked for eight bytes at a time: names, tags
/// and keys are most of a push body.
fn plain_len(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(word) = b.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().ok()?);
        // The high bit of each byte that is zero after the xor, or below
        // 0x20. A borrow can mark bytes after a marked one, never before,
        // so the lowest mark is exact.
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        let marks = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGHS);
        if marks != 0 {
            return Some(at + marks.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    b[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| at + i)
}

fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

/// What a point must satisfy beyond its shape.
struct Limits {
    now: f64,
    late_secs: f64,
    max_points: usize,
}

/// The whole body parsed and every point valid, or `None`.
pub(super) fn parse(bytes: &[u8], now: f64, cfg: &crate::ServerConfig) -> Option<ParsedPush> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut c = Cursor { text, at: 0 };
    let limits = Limits {
        now,
        late_secs: cfg.late_secs,
        max_points: cfg.max_points_per_batch,
    };
    let (mut env, mut batch, mut app, mut points) = (None, None, None, None);
    c.expect(b'{')?;
    if !c.empty(b'}') {
        loop {
            let key = c.string()?;
            c.expect(b':')?;
            match key {
                "env" => set(&mut env, c.string_or_null()?)?,
                "batch" => set(&mut batch, c.string_or_null()?)?,
                "app" => set(&mut app, c.string_or_null()?)?,
                "points" => set(&mut points, parse_points(&mut c, &limits)?)?,
                _ => return None,
            }
            if !c.more(b'}')? {
                break;
            }
        }
    }
    c.skip_ws();
    if c.at != bytes.len() {
        return None;
    }
    let (env, batch, app) = (env.flatten(), batch.flatten(), app.flatten());
    let env = env.unwrap_or("default");
    validate_env(env).ok()?;
    if batch.is_some_and(|b: &str| b.is_empty() || b.len() > 256) {
        return None;
    }
    Some(ParsedPush {
        app: app.map(str::to_string),
        env: env.to_string(),
        batch: batch.map(str::to_string),
        points: points?,
        rejected: Vec::new(),
    })
}

fn parse_points(c: &mut Cursor, limits: &Limits) -> Option<Vec<(usize, Point)>> {
    c.expect(b'[')?;
    // Room for the points a body of this size holds at most about (the
    // shortest is some 40 bytes), so the vector is not copied as it grows.
    let room = (c.text.len() - c.at) / 40;
    let mut out = Vec::with_capacity(room.min(limits.max_points));
    if c.empty(b']') {
        return Some(out);
    }
    let mut tags = Vec::new();
    let mut last_tags = Tags::new();
    let mut names = Names::default();
    loop {
        if out.len() == limits.max_points {
            return None;
        }
        let point = parse_point(c, limits, &mut tags, &mut last_tags, &mut names)?;
        out.push((out.len(), point));
        if !c.more(b']')? {
            return Some(out);
        }
    }
}

/// The metric names a body used lately, each shared by the points that
/// name it: a push names a few metrics over and over, and a reference
/// count costs less than a copy of the name per point. Two-way set
/// associative, by a hash of the name's length and last eight bytes, so a
/// dozen names that take turns (the metrics of one host, point after
/// point) all stay: a direct-mapped table of sixteen had two pairs of the
/// benchmark's ten names in one slot each, and those four were copied
/// again at every point.
struct Names([Option<Arc<str>>; NAME_SLOTS]);

const NAME_SLOTS: usize = 64;

impl Default for Names {
    fn default() -> Self {
        Names(std::array::from_fn(|_| None))
    }
}

impl Names {
    fn get(&mut self, name: &str) -> Arc<str> {
        let b = name.as_bytes();
        let mut tail = [0u8; 8];
        let n = b.len().min(8);
        tail[..n].copy_from_slice(&b[b.len() - n..]);
        let h = (u64::from_le_bytes(tail) ^ b.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The top bits pick a set of two slots.
        let first = (h >> 59) as usize * 2;
        for slot in [first, first + 1] {
            if let Some(known) = &self.0[slot] {
                if **known == *name {
                    return known.clone();
                }
            }
        }
        // The set's newer name moves over; the new one takes its place.
        self.0.swap(first, first + 1);
        self.0[first].insert(Arc::from(name)).clone()
    }
}

/// One valid single-value point; `tags` is scratch space, `last_tags` the
/// previous point's tags, shared when this point has the same (as the
/// metrics of one host often come one after another).
fn parse_point<'a>(
    c: &mut Cursor<'a>,
    limits: &Limits,
    tags: &mut Vec<(&'a str, &'a str)>,
    last_tags: &mut Tags,
    names: &mut Names,
) -> Option<Point> {
    let (mut kind, mut name, mut value, mut ts, mut tags_seen) = (None, None, None, None, false);
    tags.clear();
    c.expect(b'{')?;
    if c.empty(b'}') {
        return None;
    }
    loop {
        let key = c.string()?;
        c.expect(b':')?;
        match key {
            "kind" => {
                let k = match c.string()? {
                    "gauge" => Kind::Gauge,
                    "counter" => Kind::Counter,
                    "distribution" => Kind::Distribution,
                    _ => return None,
                };
                set(&mut kind, k)?;
            }
            "name" => set(&mut name, c.string()?)?,
            "value" => set(&mut value, c.number()?)?,
            "ts" => set(&mut ts, c.number()?)?,
            "tags" if !tags_seen => {
                tags_seen = true;
                c.expect(b'{')?;
                if !c.empty(b'}') {
                    loop {
                        let k = c.string()?;
                        c.expect(b':')?;
                        tags.push((k, c.string()?));
                        if tags.len() > MAX_TAGS {
                            return None;
                        }
                        if !c.more(b'}')? {
                            break;
                        }
                    }
                }
            }
            _ => return None,
        }
        if !c.more(b'}')? {
            break;
        }
    }
    let (kind, name, value) = (kind?, name?, value?);
    validate_name(name).ok()?;
    let ts = ts.unwrap_or(limits.now);
    if !ts.is_finite() || ts > limits.now + MAX_FUTURE_SECS || ts < limits.now - limits.late_secs {
        return None;
    }
    tags.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if !last_tags.is(tags) {
        for &(k, v) in tags.iter() {
            validate_tag(k, v).ok()?;
        }
        // A key given twice is left to the general path.
        *last_tags = Tags::from_sorted(tags)?;
    }
    Some(Point {
        kind,
        name: names.get(name),
        tags: last_tags.clone(),
        ts,
        value: PointValue::Single(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Eight bytes at a time finds what one at a time finds, with any
        /// bytes (UTF-8 continuation bytes included) before and after.
        #[test]
        fn plain_len_is_the_first_stop_byte(bytes in prop::collection::vec(
            prop_oneof![1 => Just(b'"'), 1 => Just(b'\\'), 1 => 0u8..0x20, 12 => 0x20u8..=0xff], 0..40)) {
            let want = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            prop_assert_eq!(plain_len(&bytes), want);
        }
    }

    #[test]
    fn names_are_shared_and_never_mixed_up() {
        let mut names = Names::default();
        // More names than slots, some alike in length and last bytes.
        let all: Vec<String> = (0..40)
            .map(|i| format!("m{}_{}", i % 7, i))
            .chain(["a".into(), "ba".into(), "ab".into(), "x".repeat(300)])
            .collect();
        for round in 0..3 {
            for n in &all {
                let a = names.get(n);
                assert_eq!(&*a, n.as_str(), "round {round}");
                assert!(Arc::ptr_eq(&a, &names.get(n)), "{n} shared");
            }
        }
    }

    const NOW: f64 = 1_764_100_000.0;

    /// Same outcome, down to the bits of every number.
    fn same(a: &ParsedPush, b: &ParsedPush) -> bool {
        let bits = |p: &Point| match p.value {
            PointValue::Single(v) => Some(v.to_bits()),
            _ => None,
        };
        a.app == b.app
            && a.env == b.env
            && a.batch == b.batch
            && a.rejected == b.rejected
            && a.points.len() == b.points.len()
            && a.points.iter().zip(&b.points).all(|((i, p), (j, q))| {
                i == j && p == q && p.ts.to_bits() == q.ts.to_bits() && bits(p) == bits(q)
            })
    }

    #[test]
    fn usual_bodies_take_the_fast_path() {
        let body = br#"{"env":"bench","app":null,"points":[{"kind":"gauge","name":"bench_gauge_3","tags":{"region":"eu-west","host":"host-0042"},"ts":1764100017,"value":101.25},
            {"kind": "counter", "name": "c", "value": -0, "tags": {}},
            {"value": 0.1, "name": "d", "kind": "distribution", "ts": 1764099000.5}]}"#;
        let cfg = crate::ServerConfig::default();
        let fast = parse(body, NOW, &cfg).unwrap();
        let general = super::super::parse_general(body, NOW, &cfg).unwrap();
        assert!(same(&fast, &general), "{fast:?} != {general:?}");
        assert_eq!(fast.points.len(), 3);
        assert_eq!(fast.points[0].1.tags.get("host"), Some("host-0042"));
        assert!(matches!(fast.points[1].1.value, PointValue::Single(v) if v.is_sign_negative()));
    }

    #[test]
    fn points_with_the_tags_of_the_point_before_keep_their_own_tags() {
        // The same set in another order is shared; one value apart is not;
        // no tags after tags is not; a bad value after good tags is refused.
        let body = br#"{"points":[{"kind":"gauge","name":"a","value":1,"tags":{"host":"h1","region":"eu"}},
            {"kind":"gauge","name":"b","value":2,"tags":{"region":"eu","host":"h1"}},
            {"kind":"gauge","name":"c","value":3,"tags":{"region":"eu","host":"h2"}},
            {"kind":"gauge","name":"d","value":4},
            {"kind":"gauge","name":"e","value":5,"tags":{"region":"eu","host":"h2"}}]}"#;
        let cfg = crate::ServerConfig::default();
        let fast = parse(body, NOW, &cfg).unwrap();
        let general = super::super::parse_general(body, NOW, &cfg).unwrap();
        assert!(same(&fast, &general), "{fast:?} != {general:?}");
        let hosts: Vec<Option<&str>> = fast
            .points
            .iter()
            .map(|(_, p)| p.tags.get("host"))
            .collect();
        assert_eq!(
            hosts,
            [Some("h1"), Some("h1"), Some("h2"), None, Some("h2")]
        );
        let bad = br#"{"points":[{"kind":"gauge","name":"a","value":1,"tags":{"host":"h1"}},
            {"kind":"gauge","name":"b","value":2,"tags":{"host":"h\u0001"}}]}"#;
        assert!(parse(bad, NOW, &cfg).is_none());
        let bad = "{\"points\":[{\"kind\":\"gauge\",\"name\":\"a\",\"value\":1,\"tags\":{\"host\":\"h1\"}},\
            {\"kind\":\"gauge\",\"name\":\"b\",\"value\":2,\"tags\":{\"host\":\"\u{7f}\"}}]}";
        assert!(parse(bad.as_bytes(), NOW, &cfg).is_none());
    }

    #[test]
    fn unusual_bodies_are_left_to_the_general_path() {
        let cfg = crate::ServerConfig::default();
        for body in [
            r#"{"points":[{"kind":"gauge","name":"g","value":1e3}]}"#,
            r#"{"points":[{"kind":"gauge","name":"g","value":1}],"env":nul}"#,
            r#"{"points":[{"kind":"gauge","name":"g","value":1}],"env":null,"env":null}"#,
            r#"{"points":[{"kind":"gauge","name":"g\u0041","value":1}]}"#,
            r#"{"points":[{"kind":"gauge","name":"g","value":1,"value":2}]}"#,
            r#"{"points":[{"kind":"gauge","name":"g","value":1,"tags":{"a":"1","a":"2"}}]}"#,
            r#"{"points":[{"kind":"gauge","name":"g","value":1234567890123456}]}"#,
            r#"{"points":[{"kind":"gauge","name":"g b","value":1}]}"#,
            r#"{"points":[{"kind":"gauge","name":"g","value":1}]} x"#,
            r#"{"points":[]}"#,
        ] {
            let fast = parse(body.as_bytes(), NOW, &cfg);
            assert_eq!(fast.is_some(), body.ends_with("[]}"), "{body}");
        }
    }

    /// JSON text of a number: short decimals (the fast path's own), and
    /// forms it leaves to serde_json.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => (-9_999_999i64..9_999_999, 0u32..8, 0u64..100_000_000).prop_map(|(i, d, f)| if d == 0 {
                i.to_string()
            } else {
                format!("{i}.{:0width$}", f % 10u64.pow(d), width = d as usize)
            }),
            1 => (-99_999i64..99_999, 0usize..12).prop_map(|(i, z)| format!("{i}.{}", "0".repeat(z))),
            1 => prop_oneof![
                Just("-0".to_string()),
                Just("-0.0".into()),
                Just("0.1".into()),
                Just("999999999999999".into()),
                Just("9999999999999999".into()),
                Just("0.000000000000001".into()),
                Just("1.5e3".into()),
                Just("1E-2".into()),
                Just("01".into()),
                Just("1.".into()),
                Just("-".into()),
                Just("null".into()),
                Just("\"1\"".into()),
                Just("123456789012345678901234567890".into()),
            ],
            1 => any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap()),
        ]
    }

    /// Mostly what a valid point holds, so that the fast path answers
    /// often; sometimes anything.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[a-z_][a-z0-9_.:-]{0,12}",
            2 => "[A-Za-z0-9 _./ü-]{1,12}",
            4 => prop::sample::select(vec![
                "bench_gauge_3", "a", "host", "region", "eu-west", "host-0042", "x.y:z-w",
                "k/v", "é", "a b", "1abc", "", "q\"uote", "back\\slash", "new\nline",
                "tab\t", "\u{7f}", "\u{85}", "ü", "a_b",
            ])
            .prop_map(str::to_string),
            1 => ".{0,10}",
            1 => "[a-z]{60,70}",
            1 => "[a-zü]{250,260}",
        ]
    }

    fn quoted() -> impl Strategy<Value = String> {
        text().prop_map(|s| serde_json::to_string(&s).unwrap())
    }

    fn ws() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "", " ", "\n  ", "\t"])
    }

    fn member(key: &str, value: String, ws: &str) -> String {
        format!("{ws}\"{key}\"{ws}:{ws}{value}{ws}")
    }

    fn point() -> impl Strategy<Value = String> {
        let kind = prop_oneof![
            Just("\"gauge\"".to_string()),
            Just("\"counter\"".into()),
            Just("\"distribution\"".into()),
            Just("\"meter\"".into()),
        ];
        let ts = prop_oneof![
            (-90_000i64..400).prop_map(|d| (1_764_100_000 + d).to_string()),
            (-90_000i64..400, 0u32..1000)
                .prop_map(|(d, f)| format!("{}.{f:03}", 1_764_100_000 + d)),
            number(),
        ];
        let tags = prop_oneof![
            4 => prop::collection::vec((quoted(), quoted()), 0..4),
            1 => prop::collection::vec((quoted(), quoted()), 0..19),
        ];
        let extra = prop_oneof![
            Just(None),
            Just(Some((
                "summary",
                "{\"last\":1,\"min\":1,\"max\":1,\"sum\":1,\"count\":1}".to_string()
            ))),
            Just(Some(("other", "1".to_string()))),
            Just(Some(("kind", "\"gauge\"".to_string()))),
        ];
        (
            kind,
            quoted(),
            prop::option::weighted(0.9, number()),
            prop::option::of(ts),
            prop::option::of(tags),
            prop::option::weighted(0.1, extra),
            ws(),
            any::<prop::sample::Index>(),
        )
            .prop_map(assemble)
    }

    /// A point that is valid but for a repeated tag key now and then.
    fn valid_point() -> impl Strategy<Value = String> {
        let kind = prop::sample::select(vec!["\"gauge\"", "\"counter\"", "\"distribution\""]);
        let ts = (-86_000i64..300, 0u32..1000).prop_map(|(d, f)| {
            if f < 500 {
                (1_764_100_000 + d).to_string()
            } else {
                format!("{}.{f:03}", 1_764_100_000 + d)
            }
        });
        let tags =
            prop::collection::vec(("[a-z][a-z0-9_./:-]{0,8}", "[A-Za-z0-9 _./ü-]{1,12}"), 0..4)
                .prop_map(|t| {
                    t.into_iter()
                        .map(|(k, v)| (format!("\"{k}\""), format!("\"{v}\"")))
                        .collect()
                });
        (
            kind.prop_map(str::to_string),
            "[a-z_][a-z0-9_.:-]{0,12}".prop_map(|n| format!("\"{n}\"")),
            (-9_999_999i64..9_999_999, 0u32..6, 0u64..1_000_000)
                .prop_map(|(i, d, f)| {
                    format!("{i}.{:0width$}", f % 10u64.pow(d), width = d as usize)
                })
                .prop_map(|n| Some(n.trim_end_matches('.').to_string())),
            prop::option::of(ts),
            prop::option::of(tags),
            Just(None),
            ws(),
            any::<prop::sample::Index>(),
        )
            .prop_map(assemble)
    }

    /// One point's parts, the field given, in an order of `rot`.
    type Parts = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<Vec<(String, String)>>,
        Option<Option<(&'static str, String)>>,
        &'static str,
        prop::sample::Index,
    );

    fn assemble((kind, name, value, ts, tags, extra, ws, rot): Parts) -> String {
        let mut members = vec![member("kind", kind, ws), member("name", name, ws)];
        if let Some(v) = value {
            members.push(member("value", v, ws));
        }
        if let Some(t) = ts {
            members.push(member("ts", t, ws));
        }
        if let Some(tags) = tags {
            let pairs: Vec<String> = tags
                .iter()
                .map(|(k, v)| format!("{ws}{k}:{ws}{v}"))
                .collect();
            members.push(member("tags", format!("{{{}}}", pairs.join(",")), ws));
        }
        if let Some(Some((k, v))) = extra {
            members.push(member(k, v, ws));
        }
        let n = members.len();
        members.rotate_left(rot.index(n));
        format!("{{{}}}", members.join(","))
    }

    fn body() -> impl Strategy<Value = String> {
        let env = prop_oneof![
            Just(None),
            Just(Some("\"bench\"".to_string())),
            Just(Some("null".to_string())),
            Just(Some(" null ".to_string())),
            quoted().prop_map(Some),
        ];
        let batch = prop::option::weighted(0.2, quoted());
        (
            env,
            batch,
            prop::collection::vec(prop_oneof![4 => valid_point(), 1 => point()], 0..8),
            ws(),
        )
            .prop_map(|(env, batch, points, ws)| {
                let mut members = Vec::new();
                if let Some(e) = env {
                    members.push(member("env", e, ws));
                }
                if let Some(b) = batch {
                    members.push(member("batch", b, ws));
                }
                members.push(member("points", format!("[{}]", points.join(",")), ws));
                format!("{ws}{{{}}}{ws}", members.join(","))
            })
    }

    /// Whenever the fast path answers, the general path answers the same,
    /// bit for bit; and the bodies are such that it answers, with points,
    /// in a good share of the cases.
    #[test]
    fn fast_path_agrees_with_the_general_path() {
        let mut runner = proptest::test_runner::TestRunner::default();
        let answered = std::cell::Cell::new(0u32);
        runner
            .run(&(body(), 1usize..10), |(body, max)| {
                let cfg = crate::ServerConfig {
                    max_points_per_batch: max,
                    ..crate::ServerConfig::default()
                };
                if let Some(fast) = parse(body.as_bytes(), NOW, &cfg) {
                    answered.set(answered.get() + u32::from(!fast.points.is_empty()));
                    let general = super::super::parse_general(body.as_bytes(), NOW, &cfg);
                    prop_assert!(general.is_ok(), "{body}");
                    let general = general.unwrap();
                    prop_assert!(same(&fast, &general), "{body}: {fast:?} != {general:?}");
                }
                Ok(())
            })
            .unwrap();
        let cases = runner.config().cases;
        assert!(
            answered.get() * 10 >= cases,
            "the fast path answered {} of {cases} bodies",
            answered.get()
        );
    }

    proptest! {
        /// Arbitrary bytes never panic the fast path.
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes, NOW, &crate::ServerConfig::default());
        }
    }
}
