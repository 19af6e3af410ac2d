//! Starts real ClickHouse servers for tests: one node, or two nodes that
//! form a two-shard cluster named `minutely_test`, each on free loopback
//! ports with its own config and data in a temporary directory.
//!
//! Without a ClickHouse binary the tests fail with a message saying how to
//! install it, unless `MINUTELY_SKIP_CLICKHOUSE=1` is set.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CLUSTER: &str = "minutely_test";

pub struct ClickHouse {
    child: Child,
    pub http_port: u16,
    pub tcp_port: u16,
    _dir: tempfile::TempDir,
}

impl ClickHouse {
    /// `host:port` of the HTTP interface.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// Runs one statement over HTTP and returns the answer text.
    pub fn sql(&self, q: &str) -> String {
        ureq::post(&format!("http://{}/", self.host()))
            .send_string(q)
            .unwrap()
            .into_string()
            .unwrap()
    }

    /// Stops the server (SIGKILL: tests do not need its data afterwards).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server binary and the arguments before `--config-file`.
fn binary() -> Option<(PathBuf, Vec<&'static str>)> {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let server = Path::new(dir).join("clickhouse-server");
        if server.exists() {
            return Some((server, vec![]));
        }
        let multi = Path::new(dir).join("clickhouse");
        if multi.exists() {
            return Some((multi, vec!["server"]));
        }
    }
    None
}

/// `None` (the caller returns early) only when skipping was asked for.
fn binary_or_fail() -> Option<(PathBuf, Vec<&'static str>)> {
    match binary() {
        Some(b) => Some(b),
        None if std::env::var("MINUTELY_SKIP_CLICKHOUSE").as_deref() == Ok("1") => {
            eprintln!("MINUTELY_SKIP_CLICKHOUSE=1: no ClickHouse here, test skipped");
            None
        }
        None => panic!(
            "no ClickHouse server binary (clickhouse-server or clickhouse) in /usr/bin, /usr/sbin \
             or /usr/local/bin: install Debian's clickhouse-server (apt-get install clickhouse-server), \
             or set MINUTELY_SKIP_CLICKHOUSE=1 to skip the ClickHouse tests"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Ports {
    http: u16,
    tcp: u16,
    interserver: u16,
}

fn config(dir: &Path, me: &Ports, shards: &[u16]) -> String {
    let d = dir.display();
    let shards: String = shards
        .iter()
        .map(|p| {
            format!("<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>")
        })
        .collect();
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog><size>10M</size><count>1</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http}</http_port>
    <tcp_port>{tcp}</tcp_port>
    <interserver_http_port>{isp}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <max_connections>128</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>64</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <remote_servers><{CLUSTER}>{shards}</{CLUSTER}></remote_servers>
</yandex>
"#,
        http = me.http,
        tcp = me.tcp,
        isp = me.interserver,
    )
}

const USERS: &str = r#"<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage><load_balancing>random</load_balancing></default></profiles>
    <users>
        <default><password></password><networks replace="replace"><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default>
        <writer><password>s3cret pass</password><networks replace="replace"><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></writer>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#;

fn start(me: Ports, shards: &[u16]) -> ClickHouse {
    let (bin, pre) = binary().expect("checked before");
    let dir = tempfile::tempdir().unwrap();
    for sub in ["log", "data", "tmp", "user_files"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let cfg = dir.path().join("config.xml");
    std::fs::write(&cfg, config(dir.path(), &me, shards)).unwrap();
    std::fs::write(dir.path().join("users.xml"), USERS).unwrap();
    let child = Command::new(bin)
        .args(pre)
        .arg(format!("--config-file={}", cfg.display()))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start clickhouse");
    let mut ch = ClickHouse {
        child,
        http_port: me.http,
        tcp_port: me.tcp,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ping = ureq::get(&format!("http://{}/ping", ch.host()))
            .timeout(Duration::from_secs(2))
            .call();
        if ping.is_ok() {
            return ch;
        }
        if let Ok(Some(status)) = ch.child.try_wait() {
            let log =
                std::fs::read_to_string(ch._dir.path().join("log/error.log")).unwrap_or_default();
            panic!("clickhouse exited with {status}: {log}");
        }
        assert!(
            Instant::now() < deadline,
            "clickhouse did not answer /ping in time"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ports() -> Ports {
    Ports {
        http: free_port(),
        tcp: free_port(),
        interserver: free_port(),
    }
}

/// One node (also a one-shard cluster `minutely_test`).
pub fn single() -> Option<ClickHouse> {
    binary_or_fail()?;
    let p = ports();
    let tcp = p.tcp;
    Some(start(p, &[tcp]))
}

/// Two nodes forming the two-shard cluster `minutely_test`.
pub fn pair() -> Option<(ClickHouse, ClickHouse)> {
    binary_or_fail()?;
    let (a, b) = (ports(), ports());
    let shards = [a.tcp, b.tcp];
    let first = start(a, &shards);
    let second = start(b, &shards);
    Some((first, second))
}
