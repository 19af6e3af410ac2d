//! OTLP/JSON to the same messages as the protobuf decoder. The JSON form
//! follows the protobuf JSON mapping as OTLP specifies it: lowerCamelCase
//! keys (the proto's snake_case names are accepted too), 64-bit integers
//! as strings or numbers, enums as integers (or their names), doubles also
//! as `"NaN"`/`"Infinity"`, bytes as base64. Unknown keys are ignored.

use super::proto::*;
use serde_json::{Map, Value};

type Obj = Map<String, Value>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(String);

fn err<T>(msg: impl Into<String>) -> Result<T, JsonError> {
    Err(JsonError(msg.into()))
}

/// Decodes an OTLP/JSON request.
pub fn decode(bytes: &[u8]) -> Result<ExportMetricsServiceRequest, JsonError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| JsonError(format!("body is not JSON: {e}")))?;
    let o = obj(&v, "request")?;
    Ok(ExportMetricsServiceRequest {
        resource_metrics: list(o, "resourceMetrics", "resource_metrics", resource_metrics)?,
    })
}

fn field<'a>(o: &'a Obj, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel)
        .or_else(|| o.get(snake))
        .filter(|v| !v.is_null())
}

fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Obj, JsonError> {
    v.as_object()
        .ok_or_else(|| JsonError(format!("{what} must be an object")))
}

fn list<T>(
    o: &Obj,
    camel: &str,
    snake: &str,
    f: impl Fn(&Obj) -> Result<T, JsonError>,
) -> Result<Vec<T>, JsonError> {
    match field(o, camel, snake) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|i| f(obj(i, camel)?)).collect(),
        Some(_) => err(format!("{camel} must be an array")),
    }
}

fn message<T>(
    o: &Obj,
    camel: &str,
    snake: &str,
    f: impl Fn(&Obj) -> Result<T, JsonError>,
) -> Result<Option<T>, JsonError> {
    field(o, camel, snake)
        .map(|v| f(obj(v, camel)?))
        .transpose()
}

fn string(o: &Obj, camel: &str, snake: &str) -> Result<String, JsonError> {
    match field(o, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => err(format!("{camel} must be a string")),
    }
}

/// A 64-bit integer: a number or a decimal string.
fn int(v: &Value, what: &str) -> Result<i128, JsonError> {
    let parsed = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1.9e19)
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.parse::<i128>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| JsonError(format!("{what} must be an integer")))
}

fn u64_field(o: &Obj, camel: &str, snake: &str) -> Result<u64, JsonError> {
    field(o, camel, snake).map_or(Ok(0), |v| {
        u64::try_from(int(v, camel)?).map_err(|_| JsonError(format!("{camel} is out of range")))
    })
}

fn i64_of(v: &Value, what: &str) -> Result<i64, JsonError> {
    i64::try_from(int(v, what)?).map_err(|_| JsonError(format!("{what} is out of range")))
}

fn i32_field(o: &Obj, camel: &str, snake: &str) -> Result<i32, JsonError> {
    field(o, camel, snake).map_or(Ok(0), |v| {
        i32::try_from(int(v, camel)?).map_err(|_| JsonError(format!("{camel} is out of range")))
    })
}

fn double_of(v: &Value, what: &str) -> Result<f64, JsonError> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            s => s.parse().ok(),
        },
        _ => None,
    }
    .ok_or_else(|| JsonError(format!("{what} must be a number")))
}

fn opt_double(o: &Obj, camel: &str, snake: &str) -> Result<Option<f64>, JsonError> {
    field(o, camel, snake)
        .map(|v| double_of(v, camel))
        .transpose()
}

fn temporality(o: &Obj) -> Result<i32, JsonError> {
    match field(o, "aggregationTemporality", "aggregation_temporality") {
        Some(Value::String(s)) if s == "AGGREGATION_TEMPORALITY_DELTA" => Ok(DELTA),
        Some(Value::String(s)) if s == "AGGREGATION_TEMPORALITY_CUMULATIVE" => Ok(CUMULATIVE),
        Some(Value::String(s)) if s == "AGGREGATION_TEMPORALITY_UNSPECIFIED" => Ok(0),
        _ => i32_field(o, "aggregationTemporality", "aggregation_temporality"),
    }
}

fn resource_metrics(o: &Obj) -> Result<ResourceMetrics, JsonError> {
    Ok(ResourceMetrics {
        resource: message(o, "resource", "resource", |r| {
            Ok(Resource {
                attributes: list(r, "attributes", "attributes", key_value)?,
            })
        })?,
        scope_metrics: list(o, "scopeMetrics", "scope_metrics", |s| {
            Ok(ScopeMetrics {
                scope: message(s, "scope", "scope", |sc| {
                    Ok(InstrumentationScope {
                        name: string(sc, "name", "name")?,
                        version: string(sc, "version", "version")?,
                    })
                })?,
                metrics: list(s, "metrics", "metrics", metric)?,
            })
        })?,
    })
}

fn metric(o: &Obj) -> Result<Metric, JsonError> {
    let data = if let Some(g) = message(o, "gauge", "gauge", |g| {
        Ok(Gauge {
            data_points: list(g, "dataPoints", "data_points", number_point)?,
        })
    })? {
        Some(Data::Gauge(g))
    } else if let Some(s) = message(o, "sum", "sum", |s| {
        Ok(Sum {
            data_points: list(s, "dataPoints", "data_points", number_point)?,
            aggregation_temporality: temporality(s)?,
            is_monotonic: match field(s, "isMonotonic", "is_monotonic") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return err("isMonotonic must be true or false"),
            },
        })
    })? {
        Some(Data::Sum(s))
    } else if let Some(h) = message(o, "histogram", "histogram", |h| {
        Ok(Histogram {
            data_points: list(h, "dataPoints", "data_points", histogram_point)?,
            aggregation_temporality: temporality(h)?,
        })
    })? {
        Some(Data::Histogram(h))
    } else if let Some(h) = message(o, "exponentialHistogram", "exponential_histogram", |h| {
        Ok(ExponentialHistogram {
            data_points: list(h, "dataPoints", "data_points", exp_point)?,
            aggregation_temporality: temporality(h)?,
        })
    })? {
        Some(Data::ExponentialHistogram(h))
    } else {
        message(o, "summary", "summary", |s| {
            Ok(Summary {
                data_points: list(s, "dataPoints", "data_points", |p| {
                    Ok(SummaryDataPoint {
                        time_unix_nano: u64_field(p, "timeUnixNano", "time_unix_nano")?,
                    })
                })?,
            })
        })?
        .map(Data::Summary)
    };
    Ok(Metric {
        name: string(o, "name", "name")?,
        description: string(o, "description", "description")?,
        unit: string(o, "unit", "unit")?,
        data,
    })
}

fn attributes(o: &Obj) -> Result<Vec<KeyValue>, JsonError> {
    list(o, "attributes", "attributes", key_value)
}

fn number_point(o: &Obj) -> Result<NumberDataPoint, JsonError> {
    let value = if let Some(v) = field(o, "asDouble", "as_double") {
        Some(NumberValue::AsDouble(double_of(v, "asDouble")?))
    } else if let Some(v) = field(o, "asInt", "as_int") {
        Some(NumberValue::AsInt(i64_of(v, "asInt")?))
    } else {
        None
    };
    Ok(NumberDataPoint {
        attributes: attributes(o)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano")?,
        value,
        flags: u32::try_from(u64_field(o, "flags", "flags")?).unwrap_or(0),
    })
}

fn numbers<T>(
    o: &Obj,
    camel: &str,
    snake: &str,
    f: impl Fn(&Value, &str) -> Result<T, JsonError>,
) -> Result<Vec<T>, JsonError> {
    match field(o, camel, snake) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|v| f(v, camel)).collect(),
        Some(_) => err(format!("{camel} must be an array")),
    }
}

fn u64_of(v: &Value, what: &str) -> Result<u64, JsonError> {
    u64::try_from(int(v, what)?).map_err(|_| JsonError(format!("{what} is out of range")))
}

fn histogram_point(o: &Obj) -> Result<HistogramDataPoint, JsonError> {
    Ok(HistogramDataPoint {
        attributes: attributes(o)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano")?,
        count: u64_field(o, "count", "count")?,
        sum: opt_double(o, "sum", "sum")?,
        bucket_counts: numbers(o, "bucketCounts", "bucket_counts", u64_of)?,
        explicit_bounds: numbers(o, "explicitBounds", "explicit_bounds", double_of)?,
        flags: u32::try_from(u64_field(o, "flags", "flags")?).unwrap_or(0),
        min: opt_double(o, "min", "min")?,
        max: opt_double(o, "max", "max")?,
    })
}

fn buckets(o: &Obj) -> Result<Buckets, JsonError> {
    Ok(Buckets {
        offset: i32_field(o, "offset", "offset")?,
        bucket_counts: numbers(o, "bucketCounts", "bucket_counts", u64_of)?,
    })
}

fn exp_point(o: &Obj) -> Result<ExponentialHistogramDataPoint, JsonError> {
    Ok(ExponentialHistogramDataPoint {
        attributes: attributes(o)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano")?,
        count: u64_field(o, "count", "count")?,
        sum: opt_double(o, "sum", "sum")?,
        scale: i32_field(o, "scale", "scale")?,
        zero_count: u64_field(o, "zeroCount", "zero_count")?,
        positive: message(o, "positive", "positive", buckets)?,
        negative: message(o, "negative", "negative", buckets)?,
        flags: u32::try_from(u64_field(o, "flags", "flags")?).unwrap_or(0),
        min: opt_double(o, "min", "min")?,
        max: opt_double(o, "max", "max")?,
        zero_threshold: opt_double(o, "zeroThreshold", "zero_threshold")?.unwrap_or(0.0),
    })
}

fn key_value(o: &Obj) -> Result<KeyValue, JsonError> {
    Ok(KeyValue {
        key: string(o, "key", "key")?,
        value: message(o, "value", "value", any_value)?,
    })
}

/// Nesting of attribute values accepted (arrays in arrays, ...), as prost's
/// recursion limit does for protobuf.
const MAX_DEPTH: usize = 32;

fn any_value(o: &Obj) -> Result<AnyValue, JsonError> {
    any_value_at(o, 0)
}

fn any_value_at(o: &Obj, depth: usize) -> Result<AnyValue, JsonError> {
    if depth > MAX_DEPTH {
        return err("attribute values are nested too deeply");
    }
    let value = if let Some(v) = field(o, "stringValue", "string_value") {
        Some(Any::String(
            v.as_str()
                .ok_or_else(|| JsonError("stringValue must be a string".into()))?
                .to_string(),
        ))
    } else if let Some(v) = field(o, "boolValue", "bool_value") {
        Some(Any::Bool(v.as_bool().ok_or_else(|| {
            JsonError("boolValue must be true or false".into())
        })?))
    } else if let Some(v) = field(o, "intValue", "int_value") {
        Some(Any::Int(i64_of(v, "intValue")?))
    } else if let Some(v) = field(o, "doubleValue", "double_value") {
        Some(Any::Double(double_of(v, "doubleValue")?))
    } else if let Some(v) = field(o, "arrayValue", "array_value") {
        let a = obj(v, "arrayValue")?;
        Some(Any::Array(ArrayValue {
            values: list(a, "values", "values", |x| any_value_at(x, depth + 1))?,
        }))
    } else if let Some(v) = field(o, "kvlistValue", "kvlist_value") {
        let a = obj(v, "kvlistValue")?;
        Some(Any::KvList(KeyValueList {
            values: list(a, "values", "values", |x| {
                Ok(KeyValue {
                    key: string(x, "key", "key")?,
                    value: message(x, "value", "value", |y| any_value_at(y, depth + 1))?,
                })
            })?,
        }))
    } else if let Some(v) = field(o, "bytesValue", "bytes_value") {
        Some(Any::Bytes(v.as_str().and_then(base64).ok_or_else(
            || JsonError("bytesValue must be a base64 string".into()),
        )?))
    } else {
        None
    };
    Ok(AnyValue { value })
}

/// Standard or URL-safe base64, padded or not (protobuf's JSON mapping
/// accepts both alphabets).
fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_both_alphabets() {
        assert_eq!(super::base64("aGk=").unwrap(), b"hi");
        assert_eq!(super::base64("AAEC/w").unwrap(), vec![0, 1, 2, 255]);
        assert_eq!(super::base64("AAEC_w").unwrap(), vec![0, 1, 2, 255]);
        assert!(super::base64("a b").is_none());
    }
}
