//! Query fields (DESIGN section 2) and how each is read from an aggregate.

use crate::agg::Agg;
use crate::kind::Kind;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field {
    Sum,
    Rate,
    Last,
    Mean,
    Min,
    Max,
    Count,
    /// `pNN`: the quantile `0.NN` (`p50` = 0.5, `p999` = 0.999, `p100` = 1).
    Quantile(f64),
}

impl Field {
    pub fn parse(s: &str) -> Result<Field, String> {
        let f = match s {
            "sum" => Field::Sum,
            "rate" => Field::Rate,
            "last" => Field::Last,
            "mean" => Field::Mean,
            "min" => Field::Min,
            "max" => Field::Max,
            "count" => Field::Count,
            "p100" => Field::Quantile(1.0),
            p if p.len() >= 2
                && p.starts_with('p')
                && p[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                let q: f64 = format!("0.{}", &p[1..])
                    .parse()
                    .map_err(|_| format!("unknown field {:?}", crate::validate::clip(s)))?;
                Field::Quantile(q)
            }
            _ => {
                let s = crate::validate::clip(s);
                return Err(format!(
                    "unknown field {s:?}: use sum, rate, last, mean, min, max, count or a percentile such as p95"
                ));
            }
        };
        Ok(f)
    }

    /// The fields a kind offers, for error messages and the catalogue.
    pub fn names_for(kind: Kind) -> &'static str {
        match kind {
            Kind::Counter => "sum, rate",
            Kind::Gauge => "last, mean, min, max",
            Kind::Distribution => {
                "count, sum, mean, min, max, p50, p75, p90, p95, p99, p999 or any pNN"
            }
        }
    }

    pub fn applies_to(self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Field::Sum | Field::Rate, Kind::Counter)
                | (
                    Field::Last | Field::Mean | Field::Min | Field::Max,
                    Kind::Gauge
                )
                | (
                    Field::Count
                        | Field::Sum
                        | Field::Mean
                        | Field::Min
                        | Field::Max
                        | Field::Quantile(_),
                    Kind::Distribution
                )
        )
    }

    /// The field's value for one bucket `bucket_secs` long.
    pub fn value(self, agg: &Agg, bucket_secs: i64) -> Option<f64> {
        match (self, agg) {
            (Field::Sum, Agg::Counter(s)) => Some(*s),
            (Field::Rate, Agg::Counter(s)) => Some(*s / bucket_secs as f64),
            (Field::Last, Agg::Gauge(g)) => Some(g.last),
            (Field::Mean, Agg::Gauge(g)) => Some(g.sum / g.count as f64),
            (Field::Min, Agg::Gauge(g)) => Some(g.min),
            (Field::Max, Agg::Gauge(g)) => Some(g.max),
            (Field::Count, Agg::Distribution(d)) => Some(d.count),
            (Field::Sum, Agg::Distribution(d)) => Some(d.sum),
            (Field::Mean, Agg::Distribution(d)) => Some(d.sum / d.count),
            (Field::Min, Agg::Distribution(d)) => Some(d.min),
            (Field::Max, Agg::Distribution(d)) => Some(d.max),
            (Field::Quantile(q), Agg::Distribution(d)) => d.quantile(q),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::{DistAgg, GaugeAgg};

    #[test]
    fn parse_fields() {
        assert_eq!(Field::parse("p95"), Ok(Field::Quantile(0.95)));
        assert_eq!(Field::parse("p999"), Ok(Field::Quantile(0.999)));
        assert_eq!(Field::parse("p50"), Ok(Field::Quantile(0.5)));
        assert_eq!(Field::parse("p100"), Ok(Field::Quantile(1.0)));
        assert_eq!(Field::parse("p0"), Ok(Field::Quantile(0.0)));
        assert!(Field::parse("p").is_err());
        assert!(Field::parse("pxx").is_err());
        assert!(Field::parse("median").is_err());
    }

    #[test]
    fn values_by_kind() {
        let c = Agg::Counter(120.0);
        assert_eq!(Field::Rate.value(&c, 60), Some(2.0));
        assert_eq!(Field::Last.value(&c, 60), None);
        let mut g = GaugeAgg::single(4.0, 0);
        g.merge(&GaugeAgg::single(2.0, 1));
        assert_eq!(Field::Mean.value(&Agg::Gauge(g), 60), Some(3.0));
        let d = Agg::Distribution(Box::new(DistAgg::single(7.0)));
        assert_eq!(Field::Quantile(0.99).value(&d, 60), Some(7.0));
        assert!(Field::Quantile(0.5).applies_to(Kind::Distribution));
        assert!(!Field::Rate.applies_to(Kind::Gauge));
        assert!(Field::Sum.applies_to(Kind::Counter));
    }
}
