//! Pool URLs and upstream worker names: the grammar of `stratum+tcp://host:port`, of worker-name
//! templates, and of stratum logins ([`check_login`], which the operator uses too).

use std::fmt;

use super::MAX_NAME_LEN;

/// Transport of a pool connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolScheme {
    /// `stratum+tcp://`
    Tcp,
    /// `stratum+ssl://` (TLS)
    Ssl,
}

/// A parsed `stratum+tcp://host:port` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolUrl {
    pub scheme: PoolScheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl PoolUrl {
    /// Parses a pool URL; the error says what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(r) = url.strip_prefix("stratum+tcp://") {
            (PoolScheme::Tcp, r)
        } else if let Some(r) = url.strip_prefix("stratum+ssl://") {
            (PoolScheme::Ssl, r)
        } else if let Some(r) = url.strip_prefix("stratum+tls://") {
            (PoolScheme::Ssl, r)
        } else {
            return Err("scheme must be stratum+tcp:// or stratum+ssl://".into());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err("expected only host:port after the scheme (no path, query or user)".into());
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| "unterminated IPv6 address".to_string())?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| "missing :port".to_string())?;
            (h, port)
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| "missing :port".to_string())?
        };
        if host.is_empty() {
            return Err("missing host".into());
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(format!("invalid host {host:?}"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port {port:?} (expected 1-65535)"))?;
        if port == 0 {
            return Err("port 0 is not a valid pool port".into());
        }
        Ok(Self {
            scheme,
            host: host.to_string(),
            port,
        })
    }

    /// `host:port` suitable for `TcpStream::connect`.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            PoolScheme::Tcp => "stratum+tcp",
            PoolScheme::Ssl => "stratum+ssl",
        };
        write!(f, "{scheme}://{}", self.authority())
    }
}

/// A checked worker-name template: literal text with `{user}` and `{worker}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerNameTemplate {
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Lit(String),
    User,
    Worker,
}

impl WorkerNameTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let (lit, after) = rest.split_at(open);
            if lit.contains('}') {
                return Err(format!("unmatched '}}' in template {template:?}"));
            }
            if !lit.is_empty() {
                parts.push(TemplatePart::Lit(lit.to_string()));
            }
            let close = after
                .find('}')
                .ok_or_else(|| format!("unterminated placeholder in template {template:?}"))?;
            let name = after.get(1..close).unwrap_or("");
            parts.push(match name {
                "user" => TemplatePart::User,
                "worker" => TemplatePart::Worker,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}} in template {template:?} (use {{user}} and {{worker}})"
                    ));
                }
            });
            rest = after.get(close + 1..).unwrap_or("");
        }
        if rest.contains('}') {
            return Err(format!("unmatched '}}' in template {template:?}"));
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Lit(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("empty worker name template".into());
        }
        if template
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "template {template:?} contains whitespace or control characters"
            ));
        }
        Ok(Self { parts })
    }

    /// The upstream worker name for `worker` under pool account `user`.
    pub fn render(&self, user: &str, worker: &str) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                TemplatePart::Lit(s) => out.push_str(s),
                TemplatePart::User => out.push_str(user),
                TemplatePart::Worker => out.push_str(worker),
            }
        }
        out
    }
}

/// A stratum login or worker name: printable, no whitespace, bounded. The operator checks pool
/// accounts with it before they reach a routing document (one refused login would have the hub
/// refuse the whole document).
pub fn check_login(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("longer than {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{name:?} contains whitespace or control characters"
        ));
    }
    Ok(())
}
