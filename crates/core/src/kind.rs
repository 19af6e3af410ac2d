//! The three kinds of metric.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a metric measures, which fixes what a minute keeps for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Gauge,
    Counter,
    Distribution,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Distribution => "distribution",
        }
    }

    /// Stable one-byte code used by storage formats.
    pub fn code(self) -> u8 {
        match self {
            Kind::Gauge => 1,
            Kind::Counter => 2,
            Kind::Distribution => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::Gauge),
            2 => Some(Kind::Counter),
            3 => Some(Kind::Distribution),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gauge" => Ok(Kind::Gauge),
            "counter" => Ok(Kind::Counter),
            "distribution" => Ok(Kind::Distribution),
            other => Err(format!(
                "unknown kind {:?}: expected gauge, counter or distribution",
                crate::validate::clip(other)
            )),
        }
    }
}
