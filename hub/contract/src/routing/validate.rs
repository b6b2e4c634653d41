//! Checks of a whole routing document that need no file system: every problem is collected with
//! the path of the offending field, so that the operator sees all of them at once.

use std::collections::HashMap;
use std::time::Duration;

use super::{
    DefaultRoute, DurationSpec, FailoverPolicy, HealthWindows, MAX_EXPECTED_HASHRATE,
    MAX_HEALTH_WINDOW, MAX_HEALTH_WINDOWS, MAX_NAME_LEN, MAX_POOLS_PER_ROUTE, PasswordRef,
    PoolScheme, PoolSpec, PoolUrl, ROUTING_API_VERSION, RoutingDocument, RoutingError,
    RoutingRejected, SecretKeyRef, UnknownWorkerPolicy, WorkerNameTemplate, check_login,
};

impl RoutingDocument {
    /// Parses YAML or JSON (JSON is YAML); the error names the field and line.
    pub fn parse(bytes: &[u8]) -> Result<Self, RoutingError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| RoutingError::Parse(format!("not UTF-8: {e}")))?;
        if text.trim().is_empty() {
            return Err(RoutingError::Parse("empty document".into()));
        }
        serde_yaml::from_str(text).map_err(|e| RoutingError::Parse(e.to_string()))
    }

    /// The quick-start document: every worker (known or not) on one failover list of pools.
    pub fn failover_list(generation: u64, pools: Vec<PoolSpec>) -> Self {
        let names = pools.iter().map(|p| p.name.clone()).collect();
        Self {
            api_version: ROUTING_API_VERSION.to_string(),
            generation,
            pools,
            workers: Vec::new(),
            default_route: Some(DefaultRoute { pools: names }),
            unknown_workers: UnknownWorkerPolicy::DefaultRoute,
            health: HealthWindows::default(),
            failover: FailoverPolicy::default(),
        }
    }

    /// Checks everything that does not need the file system; returns every problem found.
    pub fn validate(&self) -> Result<(), RoutingRejected> {
        let mut errs = Vec::new();
        if self.api_version != ROUTING_API_VERSION {
            errs.push(RoutingError::ApiVersion {
                found: self.api_version.clone(),
            });
        }

        let mut pool_index: HashMap<&str, usize> = HashMap::new();
        for (i, p) in self.pools.iter().enumerate() {
            let path = format!("pools[{i}]");
            if let Err(reason) = check_object_name(&p.name) {
                errs.push(invalid(format!("{path}.name"), reason));
            } else if let Some(first) = pool_index.get(p.name.as_str()) {
                errs.push(RoutingError::DuplicatePool {
                    path: format!("{path}.name"),
                    name: p.name.clone(),
                    first: format!("pools[{first}]"),
                });
            } else {
                pool_index.insert(&p.name, i);
            }
            if let Err(reason) = PoolUrl::parse(&p.url) {
                errs.push(RoutingError::MalformedUrl {
                    path: format!("{path}.url"),
                    url: p.url.clone(),
                    reason,
                });
            }
            if let Err(reason) = check_login(&p.user) {
                errs.push(invalid(format!("{path}.user"), reason));
            }
            if let Err(reason) = WorkerNameTemplate::parse(&p.worker_name_template) {
                errs.push(invalid(format!("{path}.workerNameTemplate"), reason));
            }
            check_password_ref(&path, p.password.as_ref(), &mut errs);
            if let Some(tls) = &p.tls {
                let ssl = PoolUrl::parse(&p.url).is_ok_and(|u| u.scheme == PoolScheme::Ssl);
                if !ssl {
                    errs.push(invalid(
                        format!("{path}.tls"),
                        "only for stratum+ssl:// pools".into(),
                    ));
                }
                if tls.ca_secret_ref.is_some() && tls.ca_file.is_some() {
                    errs.push(invalid(
                        format!("{path}.tls"),
                        "give caSecretRef or caFile, not both".into(),
                    ));
                }
                if let Some(r) = &tls.ca_secret_ref {
                    check_secret_key_ref(&format!("{path}.tls.caSecretRef"), r, &mut errs);
                }
                if let Some(f) = &tls.ca_file
                    && !f.is_absolute()
                {
                    errs.push(invalid(
                        format!("{path}.tls.caFile"),
                        format!("{} is not an absolute path", f.display()),
                    ));
                }
                if let Some(name) = &tls.server_name
                    && let Err(e) = crate::tls::check_server_name(name)
                {
                    errs.push(invalid(format!("{path}.tls.serverName"), e.to_string()));
                }
            }
        }
        if self.pools.is_empty() {
            errs.push(invalid("pools".into(), "no pools defined".into()));
        }

        let check_list = |path: String, list: &[String], errs: &mut Vec<RoutingError>| {
            if list.is_empty() {
                errs.push(RoutingError::EmptyPoolList { path, hint: "" });
                return;
            }
            if list.len() > MAX_POOLS_PER_ROUTE {
                errs.push(invalid(
                    path.clone(),
                    format!("{} pools (at most {MAX_POOLS_PER_ROUTE})", list.len()),
                ));
            }
            for (j, name) in list.iter().enumerate() {
                if !pool_index.contains_key(name.as_str()) {
                    errs.push(RoutingError::UnknownPool {
                        path: format!("{path}[{j}]"),
                        pool: name.clone(),
                    });
                } else if list.get(..j).is_some_and(|before| before.contains(name)) {
                    errs.push(invalid(
                        format!("{path}[{j}]"),
                        format!("pool {name:?} listed twice"),
                    ));
                }
            }
        };

        if let Some(d) = &self.default_route {
            check_list("defaultRoute.pools".into(), &d.pools, &mut errs);
        }

        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut logins: HashMap<&str, usize> = HashMap::new();
        for (i, w) in self.workers.iter().enumerate() {
            let path = format!("workers[{i}]");
            if let Err(reason) = check_login(&w.name) {
                errs.push(invalid(format!("{path}.name"), reason));
            } else if let Some(first) = names.get(w.name.as_str()) {
                errs.push(RoutingError::DuplicateWorker {
                    path: format!("{path}.name"),
                    name: w.name.clone(),
                    first: format!("workers[{first}]"),
                });
            } else {
                names.insert(&w.name, i);
            }
            if let Some(u) = &w.user
                && let Err(reason) = check_login(u)
            {
                errs.push(invalid(format!("{path}.user"), reason));
            }
            let login = w.login();
            if let Some(first) = logins.get(login) {
                // Only reported when the names differ; equal names were reported above.
                if self.workers.get(*first).is_some_and(|f| f.name != w.name) {
                    let field = if w.user.is_some() { "user" } else { "name" };
                    errs.push(RoutingError::DuplicateWorker {
                        path: format!("{path}.{field}"),
                        name: login.to_string(),
                        first: format!("workers[{first}]"),
                    });
                }
            } else {
                logins.insert(login, i);
            }
            match &w.pools {
                Some(list) if list.is_empty() => errs.push(RoutingError::EmptyPoolList {
                    path: format!("{path}.pools"),
                    hint: " (omit `pools` to use defaultRoute)",
                }),
                Some(list) => check_list(format!("{path}.pools"), list, &mut errs),
                None if self.default_route.is_none() => errs.push(invalid(
                    format!("{path}.pools"),
                    "no pools and no defaultRoute to fall back on".into(),
                )),
                None => {}
            }
            if let Some(a) = &w.assignment {
                for (field, value) in [("contract", &a.contract), ("customer", &a.customer)] {
                    if let Some(v) = value
                        && let Err(reason) = check_object_name(v)
                    {
                        errs.push(invalid(format!("{path}.assignment.{field}"), reason));
                    }
                }
            }
            if let Some(h) = w.expected_hashrate
                && !(h.is_finite() && h > 0.0 && h <= MAX_EXPECTED_HASHRATE)
            {
                errs.push(invalid(
                    format!("{path}.expectedHashrate"),
                    format!(
                        "{h} H/s is not a positive hashrate (at most {MAX_EXPECTED_HASHRATE:e})"
                    ),
                ));
            }
        }

        match &self.unknown_workers {
            UnknownWorkerPolicy::Reject => {}
            UnknownWorkerPolicy::DefaultRoute => {
                if self.default_route.is_none() {
                    errs.push(invalid(
                        "unknownWorkers.policy".into(),
                        "defaultRoute policy but no defaultRoute is defined".into(),
                    ));
                }
            }
            UnknownWorkerPolicy::Quarantine { pools } => {
                check_list("unknownWorkers.pools".into(), pools, &mut errs);
            }
        }

        let windows = &self.health.windows;
        if windows.is_empty() {
            errs.push(invalid("health.windows".into(), "no windows".into()));
        }
        if windows.len() > MAX_HEALTH_WINDOWS {
            errs.push(invalid(
                "health.windows".into(),
                format!("{} windows (at most {MAX_HEALTH_WINDOWS})", windows.len()),
            ));
        }
        for (i, w) in windows.iter().enumerate() {
            let path = format!("health.windows[{i}]");
            if w.as_std() < Duration::from_secs(1) || w.as_std() > MAX_HEALTH_WINDOW {
                errs.push(invalid(path, format!("{w} is outside 1s..24h")));
            } else if i > 0 && windows.get(i - 1).is_some_and(|prev| prev >= w) {
                errs.push(invalid(
                    path,
                    format!("{w} does not follow the previous window (windows must increase)"),
                ));
            }
        }

        let f = &self.failover;
        let positive = |name: &str, d: DurationSpec, errs: &mut Vec<RoutingError>| {
            if d.is_zero() {
                errs.push(invalid(
                    format!("failover.{name}"),
                    "must be greater than 0".into(),
                ));
            }
        };
        positive("starvation", f.starvation, &mut errs);
        positive("backoffMin", f.backoff_min, &mut errs);
        positive("backoffMax", f.backoff_max, &mut errs);
        positive("connectTimeout", f.connect_timeout, &mut errs);
        if f.backoff_min > f.backoff_max {
            errs.push(invalid(
                "failover.backoffMin".into(),
                format!("{} is above backoffMax {}", f.backoff_min, f.backoff_max),
            ));
        }
        if !(f.reject_ratio > 0.0 && f.reject_ratio <= 1.0) {
            errs.push(invalid(
                "failover.rejectRatio".into(),
                format!("{} is not in (0, 1]", f.reject_ratio),
            ));
        }
        if f.reject_window == 0 || f.reject_window > 10_000 {
            errs.push(invalid(
                "failover.rejectWindow".into(),
                format!("{} shares is not in 1..=10000", f.reject_window),
            ));
        }

        if errs.is_empty() {
            Ok(())
        } else {
            Err(RoutingRejected { errors: errs })
        }
    }
}

pub(super) fn invalid(path: String, reason: String) -> RoutingError {
    RoutingError::Invalid { path, reason }
}

/// A Secret name and key become path components under the secrets directory: no `..`, no `/`.
fn check_secret_key_ref(path: &str, s: &SecretKeyRef, errs: &mut Vec<RoutingError>) {
    for (field, v) in [("name", &s.name), ("key", &s.key)] {
        let ok = !v.is_empty()
            && v.len() <= MAX_NAME_LEN
            && v != "."
            && v != ".."
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            errs.push(invalid(
                format!("{path}.{field}"),
                format!("{v:?} is not a valid Secret {field}"),
            ));
        }
    }
}

fn check_password_ref(path: &str, r: Option<&PasswordRef>, errs: &mut Vec<RoutingError>) {
    let Some(r) = r else {
        errs.push(RoutingError::MissingPasswordRef {
            path: format!("{path}.password"),
        });
        return;
    };
    let set = [r.secret_ref.is_some(), r.file.is_some(), r.public.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set == 0 {
        errs.push(RoutingError::MissingPasswordRef {
            path: format!("{path}.password"),
        });
    } else if set > 1 {
        errs.push(invalid(
            format!("{path}.password"),
            "set exactly one of secretRef, file, public".into(),
        ));
    }
    if let Some(s) = &r.secret_ref {
        check_secret_key_ref(&format!("{path}.password.secretRef"), s, errs);
    }
    if let Some(f) = &r.file
        && !f.is_absolute()
    {
        errs.push(invalid(
            format!("{path}.password.file"),
            format!("{} is not an absolute path", f.display()),
        ));
    }
    if let Some(p) = &r.public
        && p.chars().any(|c| c.is_control())
    {
        errs.push(invalid(
            format!("{path}.password.public"),
            "contains control characters".into(),
        ));
    }
}

/// A Kubernetes-style object name (pools, contracts, customers).
fn check_object_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("name longer than {MAX_NAME_LEN} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        || name.starts_with(['-', '.'])
        || name.ends_with(['-', '.'])
    {
        return Err(format!(
            "{name:?} is not a valid name (lowercase letters, digits, '-' and '.')"
        ));
    }
    Ok(())
}
