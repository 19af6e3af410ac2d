//! Where and how to push: [`Config`] from the `MINUTELY_*` variables or a
//! [`Builder`], checked once so a bad setting fails at start, not later.

use std::time::Duration;

/// The server's default listen address.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";
/// How often the client pushes: DESIGN's 10 s keeps dashboards live
/// without making a request per call.
pub const DEFAULT_PUSH_INTERVAL: Duration = Duration::from_secs(10);
/// Probes run once a minute, at the start of each UTC minute.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// Compressed pushes kept while the server is away. At 10-20 bytes a point
/// gzipped, 8 MiB holds about half a million points: an hour and more of
/// 10,000 series, since a client that cannot push sends one point per
/// series per minute instead of six.
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 8 << 20;
/// Series one process may create. Each costs a few hundred bytes here and a
/// point per push; past the limit new series are dropped and counted.
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// One push request's timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay; it doubles per failure, with jitter.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest wait between retries.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);

/// A checked configuration; make one with [`Config::from_env`] or
/// [`Config::builder`].
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) push_url: String,
    pub(crate) push_key: String,
    pub(crate) env: Option<String>,
    pub(crate) push_interval: Duration,
    pub(crate) probe_interval: Duration,
    pub(crate) max_buffer_bytes: usize,
    pub(crate) max_series: usize,
    pub(crate) timeout: Duration,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
}

/// What is wrong with a configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("no push key: set MINUTELY_PUSH_KEY or Builder::push_key")]
    MissingPushKey,
    #[error(
        "endpoint {0:?} is invalid: use http://host:port (https needs the crate's `tls` feature)"
    )]
    Endpoint(String),
    #[error("env {0:?} is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -")]
    Env(String),
    /// An interval, limit or timeout is zero or out of range.
    #[error("{0}")]
    Setting(&'static str),
}

impl Config {
    /// Reads `MINUTELY_ENDPOINT` (default `http://127.0.0.1:8080`),
    /// `MINUTELY_PUSH_KEY` (required) and `MINUTELY_ENV` (default: the
    /// server's `default`), the same variables as the Python client.
    pub fn from_env() -> Result<Config, ConfigError> {
        Builder::from_env().build()
    }

    /// A builder with nothing read from the environment.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The push URL (`<endpoint>/api/v1/push`).
    pub fn push_url(&self) -> &str {
        &self.push_url
    }
}

/// Sets a [`Config`] up in code; [`Builder::build`] checks it and
/// [`Builder::install`] also starts the global client and installs the
/// `metrics` recorder.
///
/// ```
/// use std::time::Duration;
/// let config = minutely_client::Config::builder()
///     .endpoint("http://127.0.0.1:8080")
///     .push_key("my-push-key")
///     .env("production")
///     .push_interval(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(config.push_url(), "http://127.0.0.1:8080/api/v1/push");
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    endpoint: String,
    push_key: Option<String>,
    env: Option<String>,
    push_interval: Duration,
    probe_interval: Duration,
    max_buffer_bytes: usize,
    max_series: usize,
    timeout: Duration,
    retry_base: Duration,
    retry_max: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            endpoint: DEFAULT_ENDPOINT.into(),
            push_key: None,
            env: None,
            push_interval: DEFAULT_PUSH_INTERVAL,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
            max_series: DEFAULT_MAX_SERIES,
            timeout: DEFAULT_TIMEOUT,
            retry_base: DEFAULT_RETRY_BASE,
            retry_max: DEFAULT_RETRY_MAX,
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Builder {
    /// Starts from the `MINUTELY_*` variables; later calls override them.
    pub fn from_env() -> Builder {
        let mut b = Builder::default();
        if let Some(e) = var("MINUTELY_ENDPOINT") {
            b.endpoint = e;
        }
        b.push_key = var("MINUTELY_PUSH_KEY");
        b.env = var("MINUTELY_ENV");
        b
    }

    /// The server's base URL, e.g. `http://metrics.internal:8080`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into();
        self
    }

    pub fn push_key(mut self, key: impl Into<String>) -> Self {
        self.push_key = Some(key.into());
        self
    }

    /// The environment the points belong to (`production`, `staging`).
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.env = Some(env.into());
        self
    }

    /// How often to push (default 10 s). Pushes are aligned to multiples of
    /// the interval and to every minute's start.
    pub fn push_interval(mut self, d: Duration) -> Self {
        self.push_interval = d;
        self
    }

    /// How often probes run (default 60 s, aligned to the minute).
    pub fn probe_interval(mut self, d: Duration) -> Self {
        self.probe_interval = d;
        self
    }

    /// Bytes of compressed pushes kept while the server is away; the oldest
    /// are dropped (and counted) first.
    pub fn max_buffer_bytes(mut self, n: usize) -> Self {
        self.max_buffer_bytes = n;
        self
    }

    /// Series this process may create.
    pub fn max_series(mut self, n: usize) -> Self {
        self.max_series = n;
        self
    }

    /// Timeout of one push request.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// First and longest wait between retries of a failed push.
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base = base;
        self.retry_max = max;
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Config, ConfigError> {
        let push_key = self.push_key.ok_or(ConfigError::MissingPushKey)?;
        let endpoint = self.endpoint.trim().trim_end_matches('/').to_string();
        let tls = cfg!(feature = "tls");
        let scheme_ok =
            endpoint.starts_with("http://") || (tls && endpoint.starts_with("https://"));
        if !scheme_ok || endpoint.split("://").nth(1).is_none_or(str::is_empty) {
            return Err(ConfigError::Endpoint(self.endpoint));
        }
        let push_url = if endpoint.ends_with("/api/v1/push") {
            endpoint
        } else {
            format!("{endpoint}/api/v1/push")
        };
        if let Some(env) = &self.env {
            let ok = !env.is_empty()
                && env.len() <= 64
                && env
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(ConfigError::Env(env.clone()));
            }
        }
        let ms = Duration::from_millis(1);
        if self.push_interval < 10 * ms || self.push_interval > Duration::from_secs(60) {
            return Err(ConfigError::Setting("push_interval must be 10 ms to 60 s"));
        }
        if self.probe_interval < 10 * ms {
            return Err(ConfigError::Setting(
                "probe_interval must be at least 10 ms",
            ));
        }
        if self.max_buffer_bytes == 0 || self.max_series == 0 {
            return Err(ConfigError::Setting(
                "max_buffer_bytes and max_series must be above 0",
            ));
        }
        if self.timeout < ms || self.retry_base < ms || self.retry_max < self.retry_base {
            return Err(ConfigError::Setting(
                "timeout and retry_backoff must be positive, with base <= max",
            ));
        }
        Ok(Config {
            push_url,
            push_key,
            env: self.env,
            push_interval: self.push_interval,
            probe_interval: self.probe_interval,
            max_buffer_bytes: self.max_buffer_bytes,
            max_series: self.max_series,
            timeout: self.timeout,
            retry_base: self.retry_base,
            retry_max: self.retry_max,
        })
    }

    /// Builds the configuration, starts the global client with it and
    /// installs its recorder as the `metrics` facade's global recorder.
    pub fn install(self) -> Result<(), crate::StartError> {
        let config = self.build()?;
        crate::start(config)?;
        metrics::set_global_recorder(crate::global().recorder())
            .map_err(|_| crate::StartError::RecorderAlreadySet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_settings() {
        let ok = Config::builder().push_key("k");
        assert_eq!(
            ok.clone().endpoint("http://h:1/").build().unwrap().push_url,
            "http://h:1/api/v1/push"
        );
        assert_eq!(
            ok.clone()
                .endpoint("http://h:1/api/v1/push")
                .build()
                .unwrap()
                .push_url,
            "http://h:1/api/v1/push"
        );
        assert_eq!(
            Config::builder().build().unwrap_err(),
            ConfigError::MissingPushKey
        );
        assert!(matches!(
            ok.clone().endpoint("h:1").build(),
            Err(ConfigError::Endpoint(_))
        ));
        assert!(matches!(
            ok.clone().endpoint("http://").build(),
            Err(ConfigError::Endpoint(_))
        ));
        assert!(matches!(
            ok.clone().env("a b").build(),
            Err(ConfigError::Env(_))
        ));
        assert!(ok.clone().env("prod-1").build().is_ok());
        assert!(ok.clone().push_interval(Duration::ZERO).build().is_err());
        assert!(ok
            .retry_backoff(Duration::from_secs(2), Duration::from_secs(1))
            .build()
            .is_err());
    }

    #[test]
    fn reads_the_python_clients_variables() {
        // The only test that touches these variables.
        std::env::set_var("MINUTELY_ENDPOINT", "http://metrics.internal:9000/");
        std::env::set_var("MINUTELY_PUSH_KEY", "from-env");
        std::env::set_var("MINUTELY_ENV", "staging");
        let c = Config::from_env().unwrap();
        assert_eq!(c.push_url, "http://metrics.internal:9000/api/v1/push");
        assert_eq!(
            (c.push_key.as_str(), c.env.as_deref()),
            ("from-env", Some("staging"))
        );
        let c = Builder::from_env().env("production").build().unwrap();
        assert_eq!(
            c.env.as_deref(),
            Some("production"),
            "code overrides the environment"
        );
        std::env::remove_var("MINUTELY_PUSH_KEY");
        assert_eq!(Config::from_env().unwrap_err(), ConfigError::MissingPushKey);
        std::env::remove_var("MINUTELY_ENDPOINT");
        std::env::remove_var("MINUTELY_ENV");
    }
}
