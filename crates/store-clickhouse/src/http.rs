//! ClickHouse's HTTP interface with failover over the configured hosts.
//!
//! A request that cannot reach a host (connection refused, reset, timeout)
//! is sent to the next host; an answer with an error status is returned as
//! it is. Sending a write twice is harmless by design: point rows carry
//! their batch id and are collapsed on read, metadata rows carry versions.

use crate::target::Target;
use base64::Engine as _;
use minutely_store::StoreError;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Settings sent with every request:
/// - inserts into Distributed tables return only once every shard has the
///   rows (otherwise a node queues them and an acknowledged push could be lost
///   with that node);
/// - 64-bit integers come back as JSON numbers, not strings;
/// - a read of many series may send a long `IN (...)` list.
const SETTINGS: &str =
    "insert_distributed_sync=1&output_format_json_quote_64bit_integers=0&max_query_size=67108864";

pub struct Client {
    target: Target,
    agent: ureq::Agent,
    auth: Option<String>,
    /// The host that answered last: requests start there.
    current: AtomicUsize,
}

fn engine(host: &str, msg: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("ClickHouse at {host}: {msg}"))
}

impl Client {
    pub fn new(target: Target) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(3))
            .timeout(Duration::from_secs(120))
            .max_idle_connections_per_host(16)
            .build();
        let auth = target.user.as_ref().map(|u| {
            let pair = format!("{u}:{}", target.password.as_deref().unwrap_or(""));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Client {
            target,
            agent,
            auth,
            current: AtomicUsize::new(0),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn url(&self, host: &str, query: Option<&str>) -> String {
        let scheme = if self.target.tls { "https" } else { "http" };
        let mut url = format!("{scheme}://{host}/?{SETTINGS}");
        if let Some(q) = query {
            url.push_str("&query=");
            url.extend(form_urlencoded::byte_serialize(q.as_bytes()));
        }
        url
    }

    /// Sends one request to `host`: `query` in the URL (for inserts) and
    /// `body` as the request body. `None` means the host was unreachable.
    fn send_to(
        &self,
        host: &str,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut req = self.agent.post(&self.url(host, query));
        if let Some(a) = &self.auth {
            req = req.set("Authorization", a);
        }
        match req.send_bytes(body) {
            Ok(resp) => {
                let mut bytes = Vec::new();
                resp.into_reader()
                    .read_to_end(&mut bytes)
                    .map_err(|e| engine(host, format!("reading the answer: {e}")))?;
                Ok(Some(bytes))
            }
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                Err(engine(host, format!("HTTP {code}: {}", text.trim())))
            }
            Err(ureq::Error::Transport(t)) => {
                tracing::warn!("ClickHouse at {host} unreachable: {t}");
                Ok(None)
            }
        }
    }

    fn send(&self, query: Option<&str>, body: &[u8]) -> Result<String, StoreError> {
        let bytes = self.send_bytes(query, body)?;
        String::from_utf8(bytes)
            .map_err(|_| StoreError::Engine("ClickHouse answered with invalid UTF-8".into()))
    }

    /// Sends to the current host, then the others in order.
    fn send_bytes(&self, query: Option<&str>, body: &[u8]) -> Result<Vec<u8>, StoreError> {
        let hosts = &self.target.hosts;
        let start = self.current.load(Ordering::Relaxed) % hosts.len();
        for i in 0..hosts.len() {
            let n = (start + i) % hosts.len();
            if let Some(bytes) = self.send_to(&hosts[n], query, body)? {
                self.current.store(n, Ordering::Relaxed);
                return Ok(bytes);
            }
        }
        Err(StoreError::Engine(format!(
            "no ClickHouse host answers ({})",
            hosts.join(", ")
        )))
    }

    /// Runs a statement on one named host (schema changes go to every node).
    pub fn execute_on(&self, host: &str, sql: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .send_to(host, None, sql.as_bytes())?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub fn execute(&self, sql: &str) -> Result<String, StoreError> {
        self.send(None, sql.as_bytes())
    }

    /// `INSERT INTO table (columns) FORMAT RowBinary` with the encoded rows.
    pub fn insert(&self, table: &str, columns: &str, rows: &[u8]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let q = format!(
            "INSERT INTO {}.{table} ({columns}) FORMAT RowBinary",
            self.target.database
        );
        self.send(Some(&q), rows).map(|_| ())
    }

    /// A SELECT answered in RowBinary, as bytes.
    pub fn select_binary(&self, sql: &str) -> Result<Vec<u8>, StoreError> {
        self.send_bytes(None, format!("{sql} FORMAT RowBinary").as_bytes())
    }

    /// A SELECT answered in JSONEachRow, one `T` per row.
    pub fn select<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>, StoreError> {
        let text = self.execute(&format!("{sql} FORMAT JSONEachRow"))?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| {
                    StoreError::Engine(format!("unexpected ClickHouse row {l:?}: {e}"))
                })
            })
            .collect()
    }
}
