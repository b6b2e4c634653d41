//! PoolEndpoint: one stratum pool account that the hub may send hashrate to.
//!
//! Customers list their pools in failover order; StratumHubs name their house pools. The password
//! never appears in the object: it is read from a Secret in the same namespace.

// `#[kube(printcolumn(...))]` repeats `type_`, `priority`, ... once per column by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use hashsched_contract::routing::{
    DEFAULT_WORKER_NAME_TEMPLATE, PoolUrl, WorkerNameTemplate, check_login,
};

use super::common::{MAX_TEXT_LEN, SecretKeyRef};
use crate::quantity::Percentage;

/// Pool URL: `stratum+tcp://host:port` or `stratum+ssl://host:port`, port 1-65535 (RE2 syntax).
/// Admission's first line of defence; [`PoolEndpointSpec::validate`] then runs the hub's own URL
/// parser, so nothing the schema admits can be refused by the hub later.
pub const POOL_URL_PATTERN: &str = r"^stratum\+(tcp|ssl)://([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?|\[[0-9a-fA-F:.]+\]):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$";
/// Pool account: what the hub accepts as a stratum login (no whitespace, no control
/// characters; the length bound is the schema's `maxLength`). RE2 syntax.
pub const POOL_USER_PATTERN: &str = r"^[^\s\p{Z}\p{Cc}]+$";
/// Password sent when the pool needs none (`passwordSecretRef` unset): what pools expect.
pub const DEFAULT_POOL_PASSWORD: &str = "x";

/// A stratum pool account: where hashrate goes and under which user.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hashsched.io",
    version = "v1alpha1",
    kind = "PoolEndpoint",
    namespaced,
    derive = "PartialEq",
    status = "PoolEndpointStatus",
    shortname = "pool",
    shortname = "pools",
    category = "hashsched",
    doc = "PoolEndpoint is one stratum pool account (URL, user, password from a Secret) that the hub can send workers' hashrate to. Customers list theirs in failover order; StratumHubs name the house pools.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "User", type_ = "string", json_path = ".spec.user"),
    printcolumn(name = "Reachable", type_ = "boolean", json_path = ".status.reachable"),
    printcolumn(
        name = "Difficulty",
        type_ = "number",
        json_path = ".status.poolDifficulty"
    ),
    printcolumn(name = "Rejects", type_ = "string", json_path = ".status.rejectRatio"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.tls) || self.url.startsWith('stratum+ssl://')",
        "message": "tls is only for stratum+ssl:// pools",
        "reason": "FieldValueInvalid",
        "fieldPath": ".tls"
    }
]))]
pub struct PoolEndpointSpec {
    /// Pool address: `stratum+tcp://host:port`, or `stratum+ssl://host:port` for TLS.
    #[schemars(length(min = 1, max = 512), pattern(POOL_URL_PATTERN))]
    pub url: String,
    /// Pool account (user name or payout address) the hub authorizes as: no whitespace or
    /// control characters, at most 253 characters (what the hub accepts as a stratum login).
    #[schemars(length(min = 1, max = 253), pattern(POOL_USER_PATTERN))]
    pub user: String,
    /// How the worker name sent to the pool is built: `{user}` is `spec.user`, `{worker}` the
    /// worker's stratum user. Default `{user}.{worker}`, so the pool's dashboard shows each machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub worker_name_template: Option<String>,
    /// Secret key holding the pool password. Unset: the password is `x`, which most pools expect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Certificate checks for a `stratum+ssl://` pool. Unset: the hub verifies the pool against
    /// the system trust store and the URL's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PoolEndpointTls>,
    /// Free-text note for people (e.g. which pool dashboard to check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_TEXT_LEN))]
    pub description: Option<String>,
}

/// How the hub checks a TLS pool's certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolEndpointTls {
    /// Secret key holding CA certificates (PEM) to trust instead of the system store: a private
    /// CA, or the pool's own self-signed certificate. The hub mounts the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Name the certificate must carry (also sent as SNI) when the URL's host is not it, e.g.
    /// when the URL holds an IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub server_name: Option<String>,
}

impl PoolEndpointSpec {
    /// The worker-name template, with the default applied.
    pub fn worker_name_template(&self) -> &str {
        self.worker_name_template
            .as_deref()
            .unwrap_or(DEFAULT_WORKER_NAME_TEMPLATE)
    }

    /// Problems admission cannot see, checked with the hub's own parsers (the URL and the
    /// worker-name template mean exactly what the hub will make of them), plus one rule of ours:
    /// a template that mentions neither placeholder would give every worker the same name at the
    /// pool.
    pub fn validate(&self) -> Result<(), String> {
        PoolUrl::parse(&self.url).map_err(|e| format!("url {:?}: {e}", self.url))?;
        check_login(&self.user).map_err(|e| format!("user: {e}"))?;
        let t = self.worker_name_template();
        WorkerNameTemplate::parse(t).map_err(|e| format!("workerNameTemplate: {e}"))?;
        if !t.contains("{user}") && !t.contains("{worker}") {
            return Err(format!(
                "workerNameTemplate {t:?} contains neither {{user}} nor {{worker}}: every worker would reach the pool under the same name"
            ));
        }
        Ok(())
    }
}

/// What the hub last saw of this pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolEndpointStatus {
    /// Whether the hub's last attempt to log in and get work succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// When a hub last connected and authorized successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_connect: Option<Time>,
    /// Share difficulty the pool last set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_difficulty: Option<f64>,
    /// Rejected shares over all shares sent to this pool, over the hub's measurement window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_ratio: Option<Percentage>,
    /// Round-trip latency of share submissions, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u32>,
    /// Conditions: `Reachable`, `SpecValid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(template: Option<&str>) -> PoolEndpointSpec {
        PoolEndpointSpec {
            url: "stratum+tcp://pool.example:3333".into(),
            user: "acme".into(),
            worker_name_template: template.map(str::to_owned),
            password_secret_ref: None,
            tls: None,
            description: None,
        }
    }

    #[test]
    fn worker_name_uses_template_with_default() {
        let name = |s: PoolEndpointSpec| {
            WorkerNameTemplate::parse(s.worker_name_template())
                .unwrap()
                .render(&s.user, "s19-01")
        };
        assert_eq!(name(spec(None)), "acme.s19-01");
        assert_eq!(name(spec(Some("{worker}"))), "s19-01");
        assert!(spec(None).validate().is_ok());
        let err = spec(Some("fixed")).validate().unwrap_err();
        assert!(err.contains("same name"), "{err}");
    }

    /// One table of pool URLs, judged by the three places that judge them: the CRD schema's
    /// pattern (admission), `PoolEndpointSpec::validate` (the operator) and the hub's own parser
    /// (routing validation). They must agree, or one typo could pass admission and then have the
    /// hub refuse the routing document it ends up in.
    #[test]
    fn schema_operator_and_hub_agree_on_pool_urls() {
        let re = regex::Regex::new(POOL_URL_PATTERN).unwrap();
        let table = [
            ("stratum+tcp://pool.example:3333", true),
            ("stratum+ssl://pool.example:443", true),
            ("stratum+tcp://127.0.0.1:1", true),
            ("stratum+tcp://127.0.0.1:65535", true),
            ("stratum+tcp://[::1]:3333", true),
            ("stratum+tcp://pool.example:0", false),
            ("stratum+tcp://pool.example:65536", false),
            ("stratum+tcp://pool.example:99999", false),
            ("stratum+tcp://:3333", false),
            ("stratum+tcp://pool.example", false),
            ("http://pool.example:3333", false),
            ("stratum2+tcp://pool.example:3333", false),
        ];
        for (url, ok) in table {
            let mut s = spec(None);
            s.url = url.to_string();
            assert_eq!(re.is_match(url), ok, "schema pattern on {url}");
            assert_eq!(s.validate().is_ok(), ok, "operator validate on {url}");
            assert_eq!(
                hashsched_contract::routing::PoolUrl::parse(url).is_ok(),
                ok,
                "hub parser on {url}"
            );
        }
        // Pool accounts: the schema (pattern and maxLength), the operator and the hub's login
        // check. A login the hub refuses would have it refuse the whole routing document.
        let user_re = regex::Regex::new(POOL_USER_PATTERN).unwrap();
        let max = hashsched_contract::routing::MAX_NAME_LEN;
        for (user, ok) in [
            ("acme".to_owned(), true),
            (
                "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh".to_owned(),
                true,
            ),
            ("acme.ops-1_x".to_owned(), true),
            ("a".repeat(max), true),
            ("a".repeat(max + 1), false),
            ("acme ops".to_owned(), false),
            ("acme\tops".to_owned(), false),
            ("acme\u{a0}ops".to_owned(), false),
            ("acme\u{7}".to_owned(), false),
            (String::new(), false),
        ] {
            let mut s = spec(None);
            s.user = user.clone();
            let schema = user_re.is_match(&user) && (1..=max).contains(&user.chars().count());
            assert_eq!(schema, ok, "schema on {user:?}");
            assert_eq!(s.validate().is_ok(), ok, "operator validate on {user:?}");
            assert_eq!(
                check_login(&user).is_ok(),
                ok,
                "hub login check on {user:?}"
            );
        }
        for (template, ok) in [
            ("{user}.{worker}", true),
            ("{worker}", true),
            ("{user}_{worker}", true),
            ("{user}.{rig}", false),
            ("{user}.{worker", false),
            ("fixed", false),
            ("", false),
        ] {
            let s = spec(Some(template));
            assert_eq!(
                s.validate().is_ok(),
                ok,
                "operator validate on {template:?}"
            );
        }
    }

    #[test]
    fn url_pattern_accepts_stratum_urls_only() {
        let re = regex::Regex::new(POOL_URL_PATTERN).unwrap();
        for ok in [
            "stratum+tcp://pool.example:3333",
            "stratum+ssl://btc.pool.example.com:443",
            "stratum+tcp://127.0.0.1:3333",
            "stratum+tcp://[::1]:3333",
            "stratum+tcp://acme-pool-a:3333",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in [
            "http://pool.example:3333",
            "stratum+tcp://pool.example",
            "stratum+tcp://pool example:3333",
            "stratum+tcp://pool.example:3333/path",
            "stratum2+tcp://pool.example:3333",
            "pool.example:3333",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }
}
