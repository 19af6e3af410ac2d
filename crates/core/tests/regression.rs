//! One test per bug found, named after what broke.

use minutely_core::Kind;

/// An unknown kind of a megabyte came back whole in the error message.
#[test]
fn unknown_kind_error_does_not_echo_a_long_value() {
    let long = "k".repeat(1_000_000);
    let err = long.parse::<Kind>().unwrap_err();
    assert!(err.len() < 200, "{} bytes", err.len());
    assert!(err.contains("unknown kind"));
}

/// Query parameters of a megabyte came back whole in their error messages.
#[test]
fn query_parameter_errors_do_not_echo_a_long_value() {
    use minutely_core::query::Across;
    use minutely_core::tags::TagFilter;
    use minutely_core::timeparse::parse_time;
    use minutely_core::Field;
    let long = "x".repeat(1_000_000);
    let errors = [
        parse_time(&long, 0.0).unwrap_err(),
        TagFilter::parse(&long).unwrap_err(),
        Field::parse(&long).unwrap_err(),
        Across::parse(&long).unwrap_err(),
    ];
    for e in errors {
        assert!(e.len() < 300, "{} bytes", e.len());
    }
}
