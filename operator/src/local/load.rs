//! Loading a folder of manifests as the API server would: every `*.yaml`/`*.yml` file (multi-document
//! files included), each object admitted against its CRD schema and CEL rules
//! ([`crate::crd::admission::admit`]), then every reference between objects resolved.
//!
//! Local mode has no apiserver, so nothing else would refuse a contract that names a worker that
//! does not exist. Every problem is reported at once, each naming the file, the object and the
//! field, e.g. `examples/demo/40-contracts.yaml: RentalContract acme-m2m: spec.workers[2]: Worker
//! "s19-99" not found`. Loading is pure over [`Source`]s (name + text); only [`read_dir`] touches
//! the file system.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use serde_json::Value;

use crate::crd::admission::{AdmissionError, Object, admit};
use crate::crd::{
    API_VERSION, Customer, PoolEndpoint, RentalContract, StratumHub, Worker, WorkerOwner,
};

/// Most manifest files read from one folder (a typo'd path to `/` must not read the disk).
pub const MAX_FILES: usize = 1000;
/// Largest manifest file read.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// One manifest file: the name shown in errors (the path as given) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// One problem: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as given (`examples/demo/40-contracts.yaml`).
    pub file: String,
    /// `Kind name: field: message`, or `document N: message` when the object has no identity.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

/// Why a folder of manifests was refused: every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestsError {
    #[error("cannot read manifests: {0}")]
    Read(String),
    #[error("{} problem(s) in the manifests:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl ManifestsError {
    /// The problems (empty for a read error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ManifestsError::Read(_) => &[],
            ManifestsError::Invalid(p) => p,
        }
    }
}

/// Everything a folder declares, admitted and with every reference resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifests {
    /// The namespace the objects declare (local mode runs one namespace); `None` if none says.
    pub namespace: Option<String>,
    pub hubs: Vec<StratumHub>,
    pub pools: Vec<PoolEndpoint>,
    pub customers: Vec<Customer>,
    pub workers: Vec<Worker>,
    pub contracts: Vec<RentalContract>,
    pub secrets: Vec<Secret>,
    /// File each object came from, by `Kind/name`.
    pub origins: BTreeMap<String, String>,
}

impl Manifests {
    /// The StratumHub local mode runs: the named one, or the only one.
    pub fn hub(&self, name: Option<&str>) -> Result<&StratumHub, String> {
        match name {
            Some(n) => self
                .hubs
                .iter()
                .find(|h| h.metadata.name.as_deref() == Some(n))
                .ok_or_else(|| format!("no StratumHub named {n:?} in the manifests")),
            None => match self.hubs.as_slice() {
                [one] => Ok(one),
                [] => Err("the manifests declare no StratumHub".into()),
                many => Err(format!(
                    "the manifests declare {} StratumHubs ({}): say which one to run with --hub",
                    many.len(),
                    many.iter()
                        .filter_map(|h| h.metadata.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
        }
    }

    /// The value of `key` in Secret `name` (`data` or `stringData`).
    pub fn secret_value(&self, name: &str, key: &str) -> Option<Vec<u8>> {
        let s = self
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))?;
        if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(key)) {
            return Some(v.as_bytes().to_vec());
        }
        s.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
    }
}

/// Reads every `*.yaml` / `*.yml` file directly in `dir` (not recursive, like `kubectl apply -f
/// DIR`; hidden files such as editor swap files and the state file are skipped), sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<Source>, ManifestsError> {
    let read_err =
        |e: std::io::Error, p: &Path| ManifestsError::Read(format!("{}: {e}", p.display()));
    let entries = std::fs::read_dir(dir).map_err(|e| read_err(e, dir))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| read_err(e, dir))?;
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_yaml = file_name.ends_with(".yaml") || file_name.ends_with(".yml");
        if !is_yaml || file_name.starts_with('.') || !path.is_file() {
            continue;
        }
        paths.push(path);
        if paths.len() > MAX_FILES {
            return Err(ManifestsError::Read(format!(
                "{}: more than {MAX_FILES} manifest files",
                dir.display()
            )));
        }
    }
    paths.sort();
    let mut sources = Vec::with_capacity(paths.len());
    for path in paths {
        let len = std::fs::metadata(&path)
            .map_err(|e| read_err(e, &path))?
            .len();
        if len > MAX_FILE_BYTES {
            return Err(ManifestsError::Read(format!(
                "{}: larger than {MAX_FILE_BYTES} bytes",
                path.display()
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| read_err(e, &path))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ManifestsError::Read(format!("{}: not UTF-8 text", path.display())))?;
        sources.push(Source {
            name: path.display().to_string(),
            text,
        });
    }
    Ok(sources)
}

/// [`read_dir`] then [`load`].
pub fn load_dir(dir: &Path) -> Result<Manifests, ManifestsError> {
    let sources = read_dir(dir)?;
    load(&sources)
}

/// Admits every document of every source and resolves the references between them.
pub fn load(sources: &[Source]) -> Result<Manifests, ManifestsError> {
    let mut m = Manifests::default();
    let mut problems = Vec::new();
    let mut namespaces: BTreeMap<String, String> = BTreeMap::new(); // namespace -> first file
    for source in sources {
        for (index, doc) in serde_yaml::Deserializer::from_str(&source.text).enumerate() {
            let n = index + 1;
            let problem = |message: String| Problem {
                file: source.name.clone(),
                message,
            };
            let yaml = match serde_yaml::Value::deserialize(doc) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(problem(format!("document {n}: not valid YAML: {e}")));
                    // The parser cannot resynchronize inside a broken stream.
                    break;
                }
            };
            if yaml.is_null() {
                continue; // empty document (a lone `---` or only comments)
            }
            let value: Value = match serde_json::to_value(&yaml) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(problem(format!(
                        "document {n}: cannot be read as a Kubernetes object: {e}"
                    )));
                    continue;
                }
            };
            if !value.is_object() {
                problems.push(problem(format!(
                    "document {n}: a manifest must be a mapping with apiVersion, kind and metadata"
                )));
                continue;
            }
            let api_version = value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
            let name = value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let who = if name.is_empty() {
                format!("document {n} ({kind})")
            } else {
                format!("{kind} {name}")
            };
            if let Some(ns) = value.pointer("/metadata/namespace").and_then(Value::as_str) {
                namespaces
                    .entry(ns.to_owned())
                    .or_insert_with(|| source.name.clone());
            }
            match (api_version, kind) {
                ("v1", "Secret") => match serde_json::from_value::<Secret>(value.clone()) {
                    Ok(s) if name.is_empty() => {
                        let _ = s;
                        problems.push(problem(format!("{who}: metadata.name: Required value")));
                    }
                    Ok(s) => {
                        let bad = secret_problems(&s);
                        if bad.is_empty() {
                            note_origin(&mut m, &mut problems, "Secret", &name, &source.name);
                            m.secrets.push(s);
                        }
                        for b in bad {
                            problems.push(problem(format!("{who}: {b}")));
                        }
                    }
                    Err(e) => problems.push(problem(format!("{who}: {e}"))),
                },
                // `kubectl apply -f examples/` includes the namespace; nothing to do locally.
                ("v1", "Namespace") => {}
                (API_VERSION, _) => match admit(&value) {
                    Ok(object) => {
                        note_origin(&mut m, &mut problems, kind, &name, &source.name);
                        match object {
                            Object::StratumHub(o) => m.hubs.push(*o),
                            Object::PoolEndpoint(o) => m.pools.push(*o),
                            Object::Customer(o) => m.customers.push(*o),
                            Object::Worker(o) => m.workers.push(*o),
                            Object::RentalContract(o) => m.contracts.push(*o),
                        }
                    }
                    Err(AdmissionError::Invalid { errors, .. }) => {
                        for e in errors {
                            problems.push(problem(format!("{who}: {e}")));
                        }
                    }
                    Err(AdmissionError::UnknownKind(k)) => problems.push(problem(format!(
                        "{who}: unknown kind {k:?} in {API_VERSION} (known: StratumHub, \
                         PoolEndpoint, Customer, Worker, RentalContract)"
                    ))),
                    Err(e @ AdmissionError::NotOurs(_)) => {
                        problems.push(problem(format!("{who}: {e}")))
                    }
                },
                _ => problems.push(problem(format!(
                    "{who}: apiVersion {api_version:?} kind {kind:?} is not something local mode \
                     reads (the {API_VERSION} kinds, v1 Secret, v1 Namespace)"
                ))),
            }
        }
    }
    if namespaces.len() > 1 {
        let list: Vec<String> = namespaces
            .iter()
            .map(|(ns, file)| format!("{ns} (first in {file})"))
            .collect();
        problems.push(Problem {
            file: namespaces.values().nth(1).cloned().unwrap_or_default(),
            message: format!(
                "local mode runs one namespace, the manifests use {}",
                list.join(", ")
            ),
        });
    }
    m.namespace = namespaces.into_keys().next();
    problems.extend(check_references(&m));
    if problems.is_empty() {
        Ok(m)
    } else {
        Err(ManifestsError::Invalid(problems))
    }
}

/// What the apiserver refuses in a Secret that matters here: names and keys become file names
/// in the hub's secrets folder, so they must be what Kubernetes allows (no `/`, no `..`).
fn secret_problems(s: &Secret) -> Vec<String> {
    let mut out = Vec::new();
    let name = s.metadata.name.as_deref().unwrap_or_default();
    let name_ok = name.len() <= crate::crd::common::NAME_MAX_LEN as usize
        && regex::Regex::new(crate::crd::common::NAME_PATTERN).is_ok_and(|re| re.is_match(name));
    if !name_ok {
        out.push(format!(
            "metadata.name: Invalid value: {name:?}: must be a lowercase RFC 1123 subdomain"
        ));
    }
    let keys = s
        .data
        .iter()
        .flat_map(|d| d.keys().map(|k| ("data", k)))
        .chain(
            s.string_data
                .iter()
                .flat_map(|d| d.keys().map(|k| ("stringData", k))),
        );
    for (field, key) in keys {
        let ok = !key.is_empty()
            && key.len() <= 253
            && key != "."
            && key != ".."
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            out.push(format!(
                "{field}[{key}]: Invalid value: {key:?}: a valid config key must consist of \
                 alphanumeric characters, '-', '_' or '.'"
            ));
        }
    }
    out
}

fn note_origin(m: &mut Manifests, problems: &mut Vec<Problem>, kind: &str, name: &str, file: &str) {
    let key = format!("{kind}/{name}");
    if let Some(first) = m.origins.get(&key) {
        problems.push(Problem {
            file: file.to_owned(),
            message: format!("{kind} {name}: declared twice (also in {first})"),
        });
    } else {
        m.origins.insert(key, file.to_owned());
    }
}

/// Every reference between admitted objects, checked the way the operator's `SpecValid`
/// conditions would report them — but here a dangling reference refuses the whole folder.
pub fn check_references(m: &Manifests) -> Vec<Problem> {
    let mut problems = Vec::new();
    let names = |it: &mut dyn Iterator<Item = Option<&String>>| -> BTreeSet<String> {
        it.flatten().cloned().collect()
    };
    let hubs = names(&mut m.hubs.iter().map(|o| o.metadata.name.as_ref()));
    let pools = names(&mut m.pools.iter().map(|o| o.metadata.name.as_ref()));
    let customers = names(&mut m.customers.iter().map(|o| o.metadata.name.as_ref()));
    let workers = names(&mut m.workers.iter().map(|o| o.metadata.name.as_ref()));
    let origin = |kind: &str, name: &str| {
        m.origins
            .get(&format!("{kind}/{name}"))
            .cloned()
            .unwrap_or_else(|| "<manifests>".into())
    };
    let mut push = |kind: &str, name: &str, message: String| {
        problems.push(Problem {
            file: origin(kind, name),
            message: format!("{kind} {name}: {message}"),
        });
    };
    let pool_list = |push: &mut dyn FnMut(String), field: &str, list: &[String]| {
        for (i, p) in list.iter().enumerate() {
            if !pools.contains(p) {
                push(format!("{field}[{i}]: PoolEndpoint {p:?} not found"));
            }
        }
    };

    for h in &m.hubs {
        let name = h.metadata.name.as_deref().unwrap_or_default();
        pool_list(
            &mut |msg| push("StratumHub", name, msg),
            "spec.housePools",
            &h.spec.house_pools,
        );
        if let Some(q) = &h.spec.quarantine_pool
            && !pools.contains(q)
        {
            push(
                "StratumHub",
                name,
                format!("spec.quarantinePool: PoolEndpoint {q:?} not found"),
            );
        }
    }
    for p in &m.pools {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        if let Some(r) = &p.spec.password_secret_ref {
            let exists = m
                .secrets
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(r.name.as_str()));
            if !exists {
                push(
                    "PoolEndpoint",
                    name,
                    format!("spec.passwordSecretRef.name: Secret {:?} not found", r.name),
                );
            } else if m.secret_value(&r.name, &r.key).is_none() {
                push(
                    "PoolEndpoint",
                    name,
                    format!(
                        "spec.passwordSecretRef.key: Secret {:?} has no key {:?}",
                        r.name, r.key
                    ),
                );
            }
        }
    }
    for c in &m.customers {
        let name = c.metadata.name.as_deref().unwrap_or_default();
        pool_list(
            &mut |msg| push("Customer", name, msg),
            "spec.pools",
            &c.spec.pools,
        );
    }
    let mut users: BTreeMap<(String, String), String> = BTreeMap::new();
    for w in &m.workers {
        let name = w.metadata.name.as_deref().unwrap_or_default();
        if let WorkerOwner::Customer(c) = &w.spec.owner
            && !customers.contains(c)
        {
            push(
                "Worker",
                name,
                format!("spec.owner: Customer {c:?} not found (use \"house\" for the farm's own)"),
            );
        }
        let hub = match &w.spec.hub {
            Some(h) if !hubs.contains(h) => {
                push(
                    "Worker",
                    name,
                    format!("spec.hub: StratumHub {h:?} not found"),
                );
                h.clone()
            }
            Some(h) => h.clone(),
            None if hubs.len() > 1 => {
                push(
                    "Worker",
                    name,
                    format!(
                        "spec.hub: Required value: the namespace has {} StratumHubs, say which",
                        hubs.len()
                    ),
                );
                String::new()
            }
            None => hubs.iter().next().cloned().unwrap_or_default(),
        };
        let user = w.stratum_user().to_owned();
        if let Some(other) = users.insert((hub.clone(), user.clone()), name.to_owned()) {
            push(
                "Worker",
                name,
                format!(
                    "spec.stratumUser: {user:?} is already the stratum user of Worker {other:?} \
                     on hub {hub:?}"
                ),
            );
        }
    }
    if hubs.is_empty()
        && let Some(first) = m.workers.first().and_then(|w| w.metadata.name.as_deref())
    {
        push(
            "Worker",
            first,
            "spec.hub: the manifests declare Workers but no StratumHub for them to connect to"
                .into(),
        );
    }
    for c in &m.contracts {
        let name = c.metadata.name.as_deref().unwrap_or_default();
        let spec = &c.spec;
        let mut push_c = |msg: String| push("RentalContract", name, msg);
        if !customers.contains(&spec.customer) {
            push_c(format!(
                "spec.customer: Customer {:?} not found",
                spec.customer
            ));
        }
        for (i, w) in spec.workers.iter().enumerate() {
            if !workers.contains(w) {
                push_c(format!("spec.workers[{i}]: Worker {w:?} not found"));
            }
        }
        pool_list(&mut push_c, "spec.pools", &spec.pools);
        let customer_has_pools = m
            .customers
            .iter()
            .find(|cu| cu.metadata.name.as_deref() == Some(spec.customer.as_str()))
            .is_some_and(|cu| !cu.spec.pools.is_empty());
        if spec.pools.is_empty() && customers.contains(&spec.customer) && !customer_has_pools {
            push_c(format!(
                "spec.pools: Required value: neither the contract nor Customer {:?} lists a pool",
                spec.customer
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    const BASE: &str = r#"
apiVersion: hashsched.io/v1alpha1
kind: StratumHub
metadata: { name: hub }
spec: { housePools: [house] }
---
apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: { name: house }
spec: { url: "stratum+tcp://127.0.0.1:3333", user: farm }
---
apiVersion: hashsched.io/v1alpha1
kind: Customer
metadata: { name: acme }
spec: { pools: [house] }
---
apiVersion: hashsched.io/v1alpha1
kind: Worker
metadata: { name: w1 }
spec: { owner: acme, expectedHashrate: 100 kH/s }
"#;

    #[test]
    fn a_consistent_folder_loads() {
        let m = load(&[src("base.yaml", BASE)]).unwrap();
        assert_eq!(m.hubs.len(), 1);
        assert_eq!(m.workers.len(), 1);
        assert_eq!(m.hub(None).unwrap().metadata.name.as_deref(), Some("hub"));
    }

    #[test]
    fn every_problem_names_file_object_and_field() {
        let contract = r#"
apiVersion: hashsched.io/v1alpha1
kind: RentalContract
metadata: { name: c1 }
spec: { customer: acme, mode: MinerToMiner, workers: [w1, w9] }
---
apiVersion: hashsched.io/v1alpha1
kind: Frobnicator
metadata: { name: f }
---
apiVersion: hashsched.io/v1alpha1
kind: Worker
metadata: { name: w2 }
spec: { owner: house }
"#;
        let err = load(&[src("base.yaml", BASE), src("c.yaml", contract)]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("c.yaml: RentalContract c1: spec.workers[1]: Worker \"w9\" not found"),
            "{text}"
        );
        assert!(
            text.contains("c.yaml: Frobnicator f: unknown kind"),
            "{text}"
        );
        assert!(
            text.contains("c.yaml: Worker w2: spec.expectedHashrate: Required value"),
            "{text}"
        );
        assert_eq!(err.problems().len(), 3, "{text}");
    }

    #[test]
    fn secrets_resolve_by_name_and_key() {
        let extra = r#"
apiVersion: v1
kind: Secret
metadata: { name: creds }
stringData: { password: hunter2 }
data: { other: eA== }
---
apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: { name: p2 }
spec:
  url: "stratum+tcp://127.0.0.1:1"
  user: u
  passwordSecretRef: { name: creds, key: password }
---
apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: { name: p3 }
spec:
  url: "stratum+tcp://127.0.0.1:1"
  user: u
  passwordSecretRef: { name: creds, key: missing }
"#;
        let err = load(&[src("base.yaml", BASE), src("s.yaml", extra)]).unwrap_err();
        assert_eq!(err.problems().len(), 1, "{err}");
        assert!(err.to_string().contains(
            "s.yaml: PoolEndpoint p3: spec.passwordSecretRef.key: Secret \"creds\" has no key \"missing\""
        ));
        let ok = extra.split("---").take(2).collect::<Vec<_>>().join("---");
        let m = load(&[src("base.yaml", BASE), src("s.yaml", &ok)]).unwrap();
        assert_eq!(m.secret_value("creds", "password").unwrap(), b"hunter2");
        assert_eq!(m.secret_value("creds", "other").unwrap(), b"x");
    }

    #[test]
    fn duplicates_and_broken_yaml_are_reported() {
        let err = load(&[
            src("a.yaml", BASE),
            src("b.yaml", BASE),
            src("c.yaml", "kind: [unclosed"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("b.yaml: Worker w1: declared twice (also in a.yaml)"),
            "{text}"
        );
        assert!(
            text.contains("c.yaml: document 1: not valid YAML"),
            "{text}"
        );
    }
}
