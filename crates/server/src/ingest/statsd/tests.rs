//! Table tests for every line form and every malformed form, and a property
//! test: the parser never panics, and what it accepts prints back to a line
//! that parses the same.

use super::*;
use proptest::prelude::*;

fn ok(line: &str) -> Line<'_> {
    parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

fn nums(l: &Line) -> Vec<Value<'static>> {
    l.values()
        .map(|v| match v {
            Value::Number(x) => Value::Number(x),
            Value::Delta(x) => Value::Delta(x),
            Value::Member(_) => panic!("member"),
        })
        .collect()
}

#[test]
fn every_form() {
    let l = ok("page.views:1|c");
    assert_eq!(
        (l.name, l.ty, l.rate, l.ts),
        ("page.views", Type::Counter, 1.0, None)
    );
    assert_eq!(nums(&l), vec![Value::Number(1.0)]);

    let l = ok("errors:-3|c|@0.5");
    assert_eq!((l.ty, l.rate), (Type::Counter, 0.5));
    assert_eq!(nums(&l), vec![Value::Number(-3.0)]);

    assert_eq!(nums(&ok("temp:21.5|g")), vec![Value::Number(21.5)]);
    assert_eq!(nums(&ok("temp:+2|g")), vec![Value::Delta(2.0)]);
    assert_eq!(nums(&ok("temp:-2.5|g")), vec![Value::Delta(-2.5)]);
    assert_eq!(nums(&ok("temp:-2|c")), vec![Value::Number(-2.0)]);

    for (line, ty) in [
        ("lat:320|ms", Type::Timer),
        ("size:12|h", Type::Histogram),
        ("items:3|d", Type::Distribution),
        ("users:alice|s", Type::Set),
    ] {
        assert_eq!(ok(line).ty, ty, "{line}");
    }
    let set = ok("users:a:b|s");
    assert_eq!(set.values().collect::<Vec<_>>(), vec![Value::Member("a:b")]);

    let l = ok("items:1:2:3.5|d|@0.25|#region:eu,canary,url:http://x|T1764100000|c:abc");
    assert_eq!(
        nums(&l),
        vec![Value::Number(1.0), Value::Number(2.0), Value::Number(3.5)]
    );
    assert_eq!(l.rate, 0.25);
    assert_eq!(l.ts, Some(1_764_100_000.0));
    assert_eq!(
        l.tags().collect::<Vec<_>>(),
        vec![("region", "eu"), ("canary", "true"), ("url", "http://x")]
    );
    // Fields in any order; an empty tag list and empty tags are fine.
    let l = ok("a:1|c|#|@1");
    assert_eq!(l.tags().count(), 0);
    assert_eq!(ok("a:1|c|#x:1,,y:2").tags().count(), 2);
    assert_eq!(nums(&ok("a:1e3|ms")), vec![Value::Number(1000.0)]);
    assert_eq!(nums(&ok("a:.5|ms")), vec![Value::Number(0.5)]);
    let tags16: String = (0..18)
        .map(|i| format!("k{i}:v"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(ok(&format!("a:1|c|#{tags16}")).tags().count(), 18);
}

#[test]
fn every_malformed_form() {
    let cases: &[(&[u8], &str)] = &[
        (b"\xff\xfe:1|c", "not_utf8"),
        (b"novalue", "malformed"),
        (b"notype:1", "malformed"),
        (b"a:1|x", "bad_type"),
        (b"a:1|", "bad_type"),
        (b"a:1|C", "bad_type"),
        (b"a:|c", "bad_value"),
        (b"a:abc|c", "bad_value"),
        (b"a:nan|g", "bad_value"),
        (b"a:inf|ms", "bad_value"),
        (b"a:infinity|ms", "bad_value"),
        (b"a:1e999|c", "bad_value"),
        (b"a:1::2|d", "bad_value"),
        (b"a: 1|c", "bad_value"),
        (b"a:|s", "bad_value"),
        (b"a:x\ty|s", "bad_value"),
        (b"a:1|c|@0", "bad_rate"),
        (b"a:1|c|@1.5", "bad_rate"),
        (b"a:1|c|@-0.1", "bad_rate"),
        (b"a:1|c|@x", "bad_rate"),
        (b"a:1|c|@NaN", "bad_rate"),
        (b":1|c", "bad_name"),
        (b"1a:1|c", "bad_name"),
        (b"a b:1|c", "bad_name"),
        (b"a/b:1|c", "bad_name"),
        (b"a:1|c|#:v", "bad_tags"),
        (b"a:1|c|#k:", "bad_tags"),
        (b"a:1|c|#k y:v", "bad_tags"),
        (b"a:1|c|#k:a\x01b", "bad_tags"),
        (b"a:1|c|T", "bad_timestamp"),
        (b"a:1|c|Tabc", "bad_timestamp"),
        (b"a:1|c|T-5", "bad_timestamp"),
        (b"a:1|c|zz", "malformed"),
        (b"a:1|c|@0.5|@0.5", "malformed"),
        (b"a:1|c|#a:b|#c:d", "malformed"),
        (b"_e{5,4}:title|text", "unsupported"),
        (b"_sc|check|0", "unsupported"),
    ];
    for (line, reason) in cases {
        let err = parse_line(line).expect_err(&String::from_utf8_lossy(line));
        assert_eq!(
            err.reason(),
            *reason,
            "{:?}: {err}",
            String::from_utf8_lossy(line)
        );
        assert!(!err.to_string().is_empty());
    }
    let long_name = format!("{}:1|c", "n".repeat(201));
    assert_eq!(
        parse_line(long_name.as_bytes()).unwrap_err().reason(),
        "bad_name"
    );
    let long_key = format!("a:1|c|#{}:v", "k".repeat(65));
    assert_eq!(
        parse_line(long_key.as_bytes()).unwrap_err().reason(),
        "bad_tags"
    );
    let long_value = format!("a:1|c|#k:{}", "v".repeat(257));
    assert_eq!(
        parse_line(long_value.as_bytes()).unwrap_err().reason(),
        "bad_tags"
    );
    let many: String = (0..19)
        .map(|i| format!("k{i}:v"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        parse_line(format!("a:1|c|#{many}").as_bytes()).unwrap_err(),
        ParseError::TooManyTags
    );
    let packed = vec!["1"; MAX_PACKED_VALUES + 1].join(":");
    assert_eq!(
        parse_line(format!("a:{packed}|d").as_bytes()).unwrap_err(),
        ParseError::TooManyValues
    );
}

#[test]
fn a_bad_line_leaves_the_others_of_its_packet_alone() {
    let packet = b"a:1|c\nbad line\r\nb:2|g\r\n\n\xff:1|c\nc:3|ms\n";
    let mut good = Vec::new();
    let mut bad = Vec::new();
    parse_packet(packet, |r| match r {
        Ok(l) => good.push(l.name.to_string()),
        Err(e) => bad.push(e.reason()),
    });
    assert_eq!(good, vec!["a", "b", "c"]);
    assert_eq!(bad, vec!["malformed", "not_utf8"]);
}

/// Prints a parsed line back in canonical form.
fn print(l: &Line) -> String {
    let ty = match l.ty {
        Type::Counter => "c",
        Type::Gauge => "g",
        Type::Timer => "ms",
        Type::Histogram => "h",
        Type::Distribution => "d",
        Type::Set => "s",
    };
    let values: Vec<String> = l
        .values()
        .map(|v| match v {
            Value::Number(x) => format!("{x:?}"),
            Value::Delta(x) => format!("{x:+?}"),
            Value::Member(m) => m.to_string(),
        })
        .collect();
    let mut out = format!("{}:{}|{ty}", l.name, values.join(":"));
    if l.rate != 1.0 {
        out += &format!("|@{:?}", l.rate);
    }
    let tags: Vec<String> = l.tags().map(|(k, v)| format!("{k}:{v}")).collect();
    if !tags.is_empty() {
        out += &format!("|#{}", tags.join(","));
    }
    if let Some(ts) = l.ts {
        out += &format!("|T{}", ts as i64);
    }
    out
}

fn line_strategy() -> impl Strategy<Value = String> {
    let name = "[A-Za-z_][A-Za-z0-9_.:-]{0,12}";
    let value = prop_oneof![
        any::<i32>().prop_map(|i| i.to_string()),
        (-1e6f64..1e6).prop_map(|f| f.to_string()),
        Just("+1".to_string()),
        "[a-z0-9:]{1,6}",
        ".{0,4}",
    ];
    let ty = prop_oneof![
        Just("c"),
        Just("g"),
        Just("ms"),
        Just("h"),
        Just("d"),
        Just("s"),
        Just("x")
    ];
    let field = prop_oneof![
        (0.001f64..=1.0).prop_map(|r| format!("@{r}")),
        "#([a-z]{1,4}(:[a-z0-9 ]{1,4})?,?){0,4}",
        (1u32..2_000_000_000).prop_map(|t| format!("T{t}")),
        Just("c:abc".to_string()),
        ".{0,6}",
    ];
    (
        name,
        prop::collection::vec(value, 1..4),
        ty,
        prop::collection::vec(field, 0..4),
    )
        .prop_map(|(n, v, t, f)| {
            let mut s = format!("{n}:{}|{t}", v.join(":"));
            for x in f {
                s.push('|');
                s.push_str(&x);
            }
            s
        })
}

proptest! {
    /// Arbitrary bytes never panic the parser.
    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        parse_packet(&bytes, |_| {});
    }

    /// Lines shaped like StatsD: never panic; what is accepted prints back
    /// to a line that parses to the same values, tags, rate and time, and
    /// every value it yields is finite.
    #[test]
    fn accepted_lines_round_trip(lines in prop::collection::vec(line_strategy(), 1..8)) {
        let packet = lines.join("\n");
        let mut seen = 0;
        parse_packet(packet.as_bytes(), |r| {
            seen += 1;
            if let Ok(l) = r {
                for v in l.values() {
                    if let Value::Number(x) | Value::Delta(x) = v {
                        assert!(x.is_finite());
                    }
                }
                let printed = print(&l);
                let again = parse_line(printed.as_bytes()).unwrap();
                assert_eq!(print(&again), printed);
                assert_eq!(again.values().collect::<Vec<_>>(), l.values().collect::<Vec<_>>());
                assert_eq!(again.tags().collect::<Vec<_>>(), l.tags().collect::<Vec<_>>());
                assert_eq!((again.rate, again.ts, again.ty, again.name), (l.rate, l.ts, l.ty, l.name));
            }
        });
        // Lines made here hold no newline, so each is seen once.
        prop_assert_eq!(seen, lines.iter().filter(|l| !l.is_empty()).count());
    }
}
