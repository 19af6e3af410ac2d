//! The store URL: `clickhouse://[user[:password]@]host:port[,host:port...]/db[?cluster=NAME&tls=true]`.

use std::fmt;

/// Where and how to reach ClickHouse, parsed from the store URL.
#[derive(Clone, PartialEq)]
pub struct Target {
    /// `host:port` of each node's HTTP interface, in failover order.
    pub hosts: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: String,
    /// With a cluster, data lives in `*_local` tables on every node and is
    /// read and written through Distributed tables over them.
    pub cluster: Option<String>,
    pub tls: bool,
}

impl fmt::Debug for Target {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "clickhouse://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}/{}", self.hosts.join(","), self.database)?;
        match (&self.cluster, self.tls) {
            (Some(c), true) => write!(f, "?cluster={c}&tls=true"),
            (Some(c), false) => write!(f, "?cluster={c}"),
            (None, true) => write!(f, "?tls=true"),
            (None, false) => Ok(()),
        }
    }
}

/// Database and cluster names end up in SQL as identifiers: keep them plain.
fn plain_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(url: &str) -> Result<Target, String> {
        let rest = url.strip_prefix("clickhouse://").ok_or_else(|| {
            "the store must be \"embedded\" or a URL clickhouse://host:8123/db".to_string()
        })?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, database) = rest
            .split_once('/')
            .ok_or("the ClickHouse URL needs a database: clickhouse://host:8123/db")?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(percent_decode(user)), Some(percent_decode(pass))),
                None => (Some(percent_decode(u)), None),
            },
        };
        let hosts: Vec<String> = hosts.split(',').map(|h| h.trim().to_string()).collect();
        for h in &hosts {
            let ok = h
                .rsplit_once(':')
                .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(format!(
                    "ClickHouse host {h:?} must be host:port (the HTTP port, usually 8123)"
                ));
            }
        }
        if !plain_identifier(database) {
            return Err(format!(
                "ClickHouse database {database:?} must be letters, digits and _"
            ));
        }
        let mut target = Target {
            hosts,
            user,
            password,
            database: database.to_string(),
            cluster: None,
            tls: false,
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "cluster" if plain_identifier(&v) => target.cluster = Some(v.into_owned()),
                "cluster" => {
                    return Err(format!(
                        "ClickHouse cluster {v:?} must be letters, digits and _"
                    ))
                }
                "tls" => {
                    target.tls = match v.as_ref() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        o => return Err(format!("tls={o:?}: use true or false")),
                    }
                }
                o => {
                    return Err(format!(
                        "unknown ClickHouse URL option {o:?} (use cluster and tls)"
                    ))
                }
            }
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_part() {
        let t: Target = "clickhouse://ops:p%40ss@a:8123,b:8124/metrics?cluster=pair&tls=true"
            .parse()
            .unwrap();
        assert_eq!(t.hosts, ["a:8123", "b:8124"]);
        assert_eq!(t.user.as_deref(), Some("ops"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.database, "metrics");
        assert_eq!(t.cluster.as_deref(), Some("pair"));
        assert!(t.tls);
        assert!(!format!("{t:?}").contains("p@ss"));
        let plain: Target = "clickhouse://127.0.0.1:8123/db".parse().unwrap();
        assert_eq!((plain.user, plain.cluster, plain.tls), (None, None, false));
    }

    #[test]
    fn refuses_what_would_reach_sql_or_is_incomplete() {
        for bad in [
            "http://a:8123/db",
            "clickhouse://a:8123",
            "clickhouse://a/db",
            "clickhouse://a:8123/db;DROP",
            "clickhouse://a:8123/db?cluster=x'y",
            "clickhouse://a:8123/db?tls=maybe",
            "clickhouse://a:8123/db?user=x",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
