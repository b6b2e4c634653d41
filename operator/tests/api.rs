//! The hashsched API as users meet it: the committed CRDs and API reference are exactly what the
//! types generate, the schemas are ones kube-apiserver accepts, printer columns and CEL rules point
//! at real fields, every example loads into the types without unknown or lost fields and passes
//! admission, the examples tell a consistent story, and bad objects are refused with readable
//! messages.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hashsched_operator::crd::admission::{self, AdmissionError, Object};
use hashsched_operator::crd::{
    self, ContractMode, Customer, PoolEndpoint, RentalContract, StratumHub, Worker, generate,
};
use hashsched_operator::quantity::{Duration, Hashrate, Percentage};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_crds_and_api_docs_match_the_types() {
    let mut stale = Vec::new();
    for file in generate::generate_all().expect("CRDs render") {
        let path = repo_root().join(&file.path);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != file.content {
            stale.push(file.path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "generated files differ from the committed ones: {stale:?}. Run `cargo run -- crdgen` at the repository root and commit the result."
    );
    // No stray manifests either (e.g. a renamed kind leaving its old file behind).
    let expected: BTreeSet<String> = crd::all_crds()
        .iter()
        .map(generate::crd_file_name)
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(repo_root().join("crds"))
        .expect("crds/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    assert_eq!(present, expected, "crds/ holds exactly one file per kind");
}

#[test]
fn crds_have_names_subresources_and_categories() {
    let crds = crd::all_crds();
    let kinds: Vec<&str> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "StratumHub",
            "PoolEndpoint",
            "Customer",
            "Worker",
            "RentalContract"
        ]
    );
    for c in &crds {
        let kind = &c.spec.names.kind;
        assert_eq!(c.spec.group, "hashsched.io", "{kind}");
        assert_eq!(c.spec.scope, "Namespaced", "{kind}");
        assert_eq!(c.spec.versions.len(), 1, "{kind}");
        let v = &c.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.served && v.storage, "{kind}");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} has a status subresource"
        );
        assert_eq!(
            c.spec.names.categories.as_deref(),
            Some(&["hashsched".to_owned()][..]),
            "{kind}"
        );
        assert!(
            c.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty()),
            "{kind} has a short name"
        );
        let schema = admission::crd_schema(c).unwrap();
        assert!(
            schema.pointer("/properties/spec/description").is_some(),
            "{kind}"
        );
        assert_eq!(
            schema.pointer("/required"),
            Some(&json!(["spec"])),
            "{kind}: spec is required"
        );
    }
}

#[test]
fn schemas_are_structural_and_every_field_is_documented() {
    for c in crd::all_crds() {
        let schema = admission::crd_schema(&c).unwrap();
        let errors = admission::check_structural(&schema);
        assert!(errors.is_empty(), "{}: {errors:#?}", c.spec.names.kind);
        // Hashrates and percentages are int-or-string done the Kubernetes way: no `type`, no
        // anyOf with types inside, a pattern for strings and a minimum for integers.
        let text = serde_json::to_string(&schema).unwrap();
        assert!(!text.contains("\"anyOf\""), "{}", c.spec.names.kind);
        assert!(!text.contains("\"oneOf\""), "{}", c.spec.names.kind);
    }
    let worker = admission::crd_schema(&crd_of("Worker")).unwrap();
    let hr = worker
        .pointer("/properties/spec/properties/expectedHashrate")
        .unwrap();
    assert_eq!(hr["x-kubernetes-int-or-string"], json!(true));
    assert!(hr.get("type").is_none());
    assert_eq!(hr["minimum"], json!(0.0));
    assert!(hr["pattern"].as_str().unwrap().contains("/s"));
}

/// A kind's CRD as `crdgen` writes it.
fn crd_of(
    kind: &str,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    crd::all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap()
}

#[test]
fn structural_check_catches_what_the_apiserver_refuses() {
    let cases = [
        (
            json!({"type": "object", "properties": {"a": {"description": "x"}}}),
            "type must not be empty",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            "no description",
        ),
        (
            json!({"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string", "description": "x"}}}),
            "`$ref`",
        ),
        (
            json!({"type": "object", "properties": {"a": {"description": "x", "x-kubernetes-int-or-string": true, "type": "string"}}}),
            "type must be empty with x-kubernetes-int-or-string",
        ),
        (
            json!({"type": "object", "properties": {"a": {"description": "x", "type": "string", "anyOf": [{"type": "string", "pattern": "^a$"}]}}}),
            "`type` must not be set inside a logical junctor",
        ),
        (
            json!({"type": "object", "properties": {"a": {"description": "x", "type": "object", "properties": {}, "additionalProperties": {"type": "string"}}}}),
            "mutually exclusive",
        ),
        (
            json!({"type": "object", "properties": {"a": {"description": "x", "type": "array"}}}),
            "arrays must specify items",
        ),
        (
            json!({"type": "object", "properties": {"a": {"description": "x", "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"], "items": {"type": "object", "properties": {"type": {"type": "string"}}}}}}),
            "must be required",
        ),
        (
            json!({"type": "object", "properties": {"a": {"description": "x", "type": "integer", "minimum": 1, "default": 0}}}),
            "default does not validate",
        ),
        (
            json!({"type": "object", "properties": {"a": {"description": "x", "type": "string", "pattern": "(unclosed"}}}),
            "pattern does not compile",
        ),
    ];
    for (schema, needle) in cases {
        let errors = admission::check_structural(&schema);
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{schema}: {errors:?} lacks {needle:?}"
        );
    }
    // The one anyOf Kubernetes allows with types inside.
    let ok = json!({"type": "object", "properties": {"a": {"description": "x", "x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}}});
    assert_eq!(admission::check_structural(&ok), Vec::<String>::new());
}

/// Follows a printer column's JSON path (`.status.uptime.ratio`) through the schema.
fn resolve_path<'a>(schema: &'a Value, json_path: &str) -> Option<&'a Value> {
    let mut node = schema;
    for part in json_path.trim_start_matches('.').split('.') {
        node = node.get("properties")?.get(part)?;
    }
    Some(node)
}

#[test]
fn printer_columns_point_at_schema_fields() {
    for c in crd::all_crds() {
        let schema = admission::crd_schema(&c).unwrap();
        let columns = c.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        assert!(columns.len() >= 4, "{}", c.spec.names.kind);
        for col in columns {
            if col.json_path == ".metadata.creationTimestamp" {
                continue;
            }
            let node = resolve_path(&schema, &col.json_path).unwrap_or_else(|| {
                panic!(
                    "{} column {} -> {} missing",
                    c.spec.names.kind, col.name, col.json_path
                )
            });
            let ty = node.get("type").and_then(Value::as_str);
            let expected = match col.type_.as_str() {
                "date" => {
                    assert_eq!(
                        node.get("format"),
                        Some(&json!("date-time")),
                        "{}",
                        col.name
                    );
                    Some("string")
                }
                "string" if ty.is_none() => None, // int-or-string quantities print as strings
                other => Some(other),
            };
            assert_eq!(ty, expected, "{} column {}", c.spec.names.kind, col.name);
        }
    }
    // The questions people ask.
    let cols = |kind: &str| -> Vec<String> {
        crd_of(kind).spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap()
            .into_iter()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(
        cols("Worker"),
        [
            "Phase",
            "Hashrate",
            "Expected",
            "Contract",
            "Role",
            "Owner",
            "Last Share",
            "Age"
        ]
    );
    assert_eq!(
        cols("RentalContract"),
        [
            "Customer",
            "Mode",
            "Contracted",
            "Delivered",
            "Uptime",
            "Phase",
            "Age"
        ]
    );
}

#[test]
fn cel_rules_reference_existing_fields_and_stay_cheap() {
    let mut rules_seen = 0;
    for c in crd::all_crds() {
        let schema = admission::crd_schema(&c).unwrap();
        let mut stack = vec![(schema.clone(), String::from("<root>"))];
        while let Some((node, path)) = stack.pop() {
            if let Some(rules) = node
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
            {
                for r in rules {
                    rules_seen += 1;
                    let rule = r["rule"].as_str().unwrap();
                    let message = r["message"].as_str().unwrap_or("");
                    assert!(!message.is_empty(), "{path}: rule {rule} needs a message");
                    for field in self_fields(rule) {
                        let known = node.get("properties").and_then(|p| p.get(&field)).is_some()
                            || (path == "<root>" && field == "metadata");
                        assert!(known, "{path}: rule {rule:?} uses unknown field {field:?}");
                        // Lists used in rules are bounded so the cost estimate stays finite.
                        if let Some(list) = node.pointer(&format!("/properties/{field}"))
                            && list.get("type") == Some(&json!("array"))
                        {
                            assert!(list.get("maxItems").is_some(), "{path}.{field}: maxItems");
                        }
                    }
                }
            }
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    stack.push((v.clone(), format!("{path}.{k}")));
                }
            }
        }
    }
    assert!(rules_seen >= 8, "only {rules_seen} CEL rules");
}

/// Field names a CEL rule reads from `self` (`self.foo`, `has(self.foo)`).
fn self_fields(rule: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = rule;
    while let Some(i) = rest.find("self.") {
        let after = &rest[i + 5..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        out.insert(after[..end].to_owned());
        rest = &after[end..];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------------

/// Every YAML document under examples/, with the file it came from.
fn example_documents() -> Vec<(String, Value)> {
    let dir = repo_root().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples");
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for (i, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let yaml = <serde_yaml::Value as serde::Deserialize>::deserialize(de)
                .unwrap_or_else(|e| panic!("{name} document {i}: {e}"));
            if yaml.is_null() {
                continue;
            }
            let json: Value = serde_json::to_value(&yaml)
                .unwrap_or_else(|e| panic!("{name} document {i}: not JSON-compatible: {e}"));
            docs.push((format!("{name}#{i}"), json));
        }
    }
    docs
}

/// Equal as the API means it: numbers by value, and quantity strings by what they parse to
/// (`"104TH/s"` re-serializes as `"104 TH/s"`, `1` as `1.0`). Reports the first difference.
fn equivalent(a: &Value, b: &Value, path: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => equivalent(va, vb, &format!("{path}.{k}"))?,
                    (Some(_), None) => return Err(format!("{path}.{k}: lost on load")),
                    (None, Some(_)) => return Err(format!("{path}.{k}: appeared on load")),
                    (None, None) => {}
                }
            }
            Ok(())
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .try_for_each(|(i, (va, vb))| equivalent(va, vb, &format!("{path}[{i}]"))),
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => Ok(()),
        _ if a == b => Ok(()),
        _ => {
            let text = |v: &Value| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            if let (Some(sa), Some(sb)) = (text(a), text(b)) {
                let same = |p: fn(&str) -> Option<String>| p(&sa).is_some() && p(&sa) == p(&sb);
                if same(|s| s.parse::<Hashrate>().ok().map(|h| h.to_string()))
                    || same(|s| s.parse::<Duration>().ok().map(|d| d.to_string()))
                    || same(|s| s.parse::<Percentage>().ok().map(|p| p.to_string()))
                {
                    return Ok(());
                }
            }
            Err(format!("{path}: {a} became {b}"))
        }
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value, origin: &str) -> T {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{origin}: does not load: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    if let Err(diff) = equivalent(doc, &back, "") {
        panic!("{origin}: {diff}");
    }
    typed
}

/// The farm the examples describe, loaded through admission.
#[derive(Default)]
struct Farm {
    hubs: BTreeMap<String, StratumHub>,
    pools: BTreeMap<String, PoolEndpoint>,
    customers: BTreeMap<String, Customer>,
    workers: BTreeMap<String, Worker>,
    contracts: BTreeMap<String, RentalContract>,
    secrets: BTreeMap<String, Secret>,
    namespaces: BTreeSet<String>,
}

fn load_farm() -> Farm {
    let mut farm = Farm::default();
    for (origin, doc) in example_documents() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match kind.as_str() {
            "Namespace" => {
                let ns: Namespace = round_trip(&doc, &origin);
                farm.namespaces.insert(ns.metadata.name.unwrap());
                continue;
            }
            "Secret" => {
                let s: Secret = round_trip(&doc, &origin);
                assert!(
                    s.string_data.as_ref().is_some_and(|d| !d.is_empty()) || s.data.is_some(),
                    "{origin}: empty Secret"
                );
                farm.secrets.insert(name, s);
                continue;
            }
            _ => {}
        }
        assert_eq!(
            doc.pointer("/metadata/namespace").and_then(Value::as_str),
            Some("mining"),
            "{origin}: every example object lives in namespace mining"
        );
        let object = admission::admit(&doc).unwrap_or_else(|e| panic!("{origin}: {e}"));
        match object {
            Object::StratumHub(_) => {
                farm.hubs.insert(name, round_trip(&doc, &origin));
            }
            Object::PoolEndpoint(_) => {
                farm.pools.insert(name, round_trip(&doc, &origin));
            }
            Object::Customer(_) => {
                farm.customers.insert(name, round_trip(&doc, &origin));
            }
            Object::Worker(_) => {
                farm.workers.insert(name, round_trip(&doc, &origin));
            }
            Object::RentalContract(_) => {
                farm.contracts.insert(name, round_trip(&doc, &origin));
            }
        }
    }
    farm
}

#[test]
fn examples_load_into_the_types_and_pass_admission() {
    let farm = load_farm();
    assert_eq!(farm.namespaces, BTreeSet::from(["mining".to_owned()]));
    assert_eq!(farm.hubs.len(), 1);
    assert_eq!(farm.customers.len(), 3);
    assert_eq!(farm.pools.len(), 7, "a house pool plus two per customer");
    assert_eq!(farm.workers.len(), 20);
    assert_eq!(farm.contracts.len(), 3);
}

/// Label selectors are kube's own `Selector` (the scheduler matches with the same type).
fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    Selector::try_from(sel.clone())
        .unwrap_or_else(|e| panic!("selector {sel:?} does not parse: {e}"))
        .matches(labels)
}

#[test]
fn examples_tell_a_consistent_story() {
    let farm = load_farm();
    let secret_has = |name: &str, key: &str| {
        farm.secrets.get(name).is_some_and(|s| {
            s.string_data.as_ref().is_some_and(|d| d.contains_key(key))
                || s.data.as_ref().is_some_and(|d| d.contains_key(key))
        })
    };
    for (name, pool) in &farm.pools {
        if let Some(r) = &pool.spec.password_secret_ref {
            assert!(
                secret_has(&r.name, &r.key),
                "pool {name}: secret {}/{} missing",
                r.name,
                r.key
            );
        }
    }
    for (name, hub) in &farm.hubs {
        for p in hub.spec.house_pools.iter().chain(&hub.spec.quarantine_pool) {
            assert!(farm.pools.contains_key(p), "hub {name}: pool {p} missing");
        }
    }
    for (name, c) in &farm.customers {
        assert_eq!(
            c.spec.pools.len(),
            2,
            "customer {name} has a primary and a backup pool"
        );
        for p in &c.spec.pools {
            assert!(
                farm.pools.contains_key(p),
                "customer {name}: pool {p} missing"
            );
        }
    }
    let mut owners = BTreeSet::new();
    for (name, w) in &farm.workers {
        if let Some(c) = w.spec.owner.customer() {
            assert!(
                farm.customers.contains_key(c),
                "worker {name}: owner {c} missing"
            );
            owners.insert(c.to_owned());
        } else {
            owners.insert("house".to_owned());
        }
        if let Some(h) = &w.spec.hub {
            assert!(farm.hubs.contains_key(h), "worker {name}: hub {h} missing");
        }
        let labels = w.metadata.labels.clone().unwrap_or_default();
        if labels.get(crd::LABEL_ROLE).map(String::as_str) == Some(crd::ROLE_SPARE) {
            assert!(
                w.spec.owner.is_house(),
                "spare {name} must be a house machine"
            );
        }
        let th = w.spec.expected_hashrate.as_terahashes();
        assert!(
            (90.0..=250.0).contains(&th),
            "{name}: {th} TH/s is not S19/S21-class"
        );
    }
    assert_eq!(
        owners.len(),
        3,
        "house and customers own workers: {owners:?}"
    );
    let spares: Vec<&Worker> = farm
        .workers
        .values()
        .filter(|w| {
            w.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(crd::LABEL_ROLE))
                .map(String::as_str)
                == Some(crd::ROLE_SPARE)
        })
        .collect();
    assert!(spares.len() >= 3, "house spares");
    assert_eq!(
        farm.workers.values().filter(|w| w.spec.maintenance).count(),
        1,
        "one worker in maintenance"
    );

    let mut modes = BTreeSet::new();
    for (name, contract) in &farm.contracts {
        let spec = &contract.spec;
        modes.insert(spec.mode.to_string());
        assert!(
            farm.customers.contains_key(&spec.customer),
            "{name}: customer missing"
        );
        for p in &spec.pools {
            assert!(farm.pools.contains_key(p), "{name}: pool {p} missing");
        }
        let rented: Vec<&Worker> = if let Some(sel) = &spec.worker_selector {
            farm.workers
                .values()
                .filter(|w| selector_matches(sel, &w.metadata.labels.clone().unwrap_or_default()))
                .collect()
        } else {
            spec.workers
                .iter()
                .map(|w| {
                    farm.workers
                        .get(w)
                        .unwrap_or_else(|| panic!("{name}: worker {w} missing"))
                })
                .collect()
        };
        assert!(!rented.is_empty(), "{name} selects some workers");
        for w in &rented {
            let labels = w.metadata.labels.clone().unwrap_or_default();
            assert_ne!(
                labels.get(crd::LABEL_ROLE).map(String::as_str),
                Some(crd::ROLE_SPARE)
            );
        }
        let available_spares = spares
            .iter()
            .filter(|w| !w.spec.maintenance)
            .filter(|w| {
                selector_matches(
                    &spec.failover_policy().spare_selector(),
                    &w.metadata.labels.clone().unwrap_or_default(),
                )
            })
            .count();
        assert!(available_spares >= 2, "{name}: spares to fail over to");
        if spec.mode == ContractMode::Threshold {
            let total = rented.iter().fold(Hashrate::ZERO, |acc, w| {
                acc.saturating_add(w.spec.expected_hashrate)
            });
            let contracted = spec.contracted_hashrate.unwrap();
            assert!(
                total >= contracted.scale(1.0 - spec.tolerance().as_fraction()),
                "{name}: selected workers ({total}) cover the contract ({contracted})"
            );
        }
    }
    assert_eq!(
        modes,
        BTreeSet::from(["MinerToMiner".to_owned(), "Threshold".to_owned()])
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

fn contract(spec: Value) -> Value {
    json!({
        "apiVersion": "hashsched.io/v1alpha1",
        "kind": "RentalContract",
        "metadata": {"name": "bad", "namespace": "mining"},
        "spec": spec,
    })
}

fn worker(spec: Value) -> Value {
    json!({
        "apiVersion": "hashsched.io/v1alpha1",
        "kind": "Worker",
        "metadata": {"name": "w", "namespace": "mining"},
        "spec": spec,
    })
}

fn refusal(doc: &Value) -> String {
    match admission::admit(doc) {
        Err(e @ AdmissionError::Invalid { .. }) => e.to_string(),
        other => panic!("expected a refusal for {doc}, got {other:?}"),
    }
}

#[test]
fn invalid_objects_are_refused_with_readable_messages() {
    let cases = [
        (
            contract(json!({"customer": "acme", "mode": "Threshold"})),
            "mode Threshold needs spec.contractedHashrate",
        ),
        (
            contract(json!({"customer": "acme", "mode": "MinerToMiner"})),
            "mode MinerToMiner needs spec.workers or spec.workerSelector",
        ),
        (
            contract(json!({"customer": "acme", "mode": "Rental", "workers": ["a"]})),
            "spec.mode: Unsupported value: \"Rental\": supported values: \"MinerToMiner\", \"Threshold\"",
        ),
        (
            contract(
                json!({"customer": "acme", "mode": "MinerToMiner", "workers": ["a"],
                "start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}),
            ),
            "spec.end must be after spec.start",
        ),
        (
            contract(json!({"customer": "acme", "mode": "MinerToMiner", "workers": ["a", "a"]})),
            "spec.workers[1]: Duplicate value: \"a\"",
        ),
        (
            contract(
                json!({"customer": "acme", "mode": "Threshold", "contractedHashrate": "1 PH/s", "tolerance": "150%"}),
            ),
            "spec.tolerance: Invalid value: \"150%\"",
        ),
        (
            contract(
                json!({"customer": "acme", "mode": "Threshold", "contractedHashrate": "1 PH/s",
                "healthPolicy": {"minDwell": "5 minutes"}}),
            ),
            "spec.healthPolicy.minDwell: Invalid value: \"5 minutes\"",
        ),
        (
            contract(
                json!({"customer": "acme", "mode": "Threshold", "contractedHashrate": "1 PH/s", "tolerence": "5%"}),
            ),
            "spec.tolerence: unknown field",
        ),
        (
            worker(json!({"owner": "house", "expectedHashrate": -5})),
            "spec.expectedHashrate: Invalid value: -5: spec.expectedHashrate in body should be greater than or equal to 0",
        ),
        (
            worker(json!({"owner": "house", "expectedHashrate": "-5 TH/s"})),
            "spec.expectedHashrate: Invalid value: \"-5 TH/s\"",
        ),
        (
            worker(json!({"owner": "house", "expectedHashrate": "fast"})),
            "spec.expectedHashrate in body should match",
        ),
        (
            worker(json!({"owner": "house", "expectedHashrate": 1.5})),
            "must be of type integer or string",
        ),
        (
            worker(json!({"owner": "House Farm", "expectedHashrate": "104 TH/s"})),
            "spec.owner: Invalid value: \"House Farm\"",
        ),
        (
            worker(json!({"owner": "house", "expectedHashrate": "0 TH/s"})),
            "spec.expectedHashrate must be greater than 0",
        ),
        (
            worker(json!({"owner": "house"})),
            "spec.expectedHashrate: Required value",
        ),
        (
            json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "PoolEndpoint",
                "metadata": {"name": "p"}, "spec": {"url": "http://pool.example:3333", "user": "u"}}),
            "spec.url: Invalid value: \"http://pool.example:3333\"",
        ),
        (
            json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "StratumHub",
                "metadata": {"name": "h"}, "spec": {"unknownWorkers": "Quarantine"}}),
            "unknownWorkers: Quarantine needs spec.quarantinePool",
        ),
        (
            json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "StratumHub",
                "metadata": {"name": "h"}, "spec": {"stratumPort": 70000}}),
            "spec.stratumPort: Invalid value: 70000",
        ),
        (
            json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "Customer",
                "metadata": {"name": "house"}, "spec": {}}),
            "the name \"house\" is reserved",
        ),
    ];
    for (doc, needle) in cases {
        let msg = refusal(&doc);
        assert!(msg.contains(needle), "{doc}:\n  {msg}\n  lacks {needle:?}");
    }
}

#[test]
fn cel_rules_and_operator_checks_say_the_same() {
    // Local mode (operator-side `validate()`) and the apiserver (CEL) must refuse with the same
    // words, so the docs can quote one message.
    let cel_messages: BTreeSet<String> = crd::all_crds()
        .iter()
        .filter_map(admission::crd_schema)
        .flat_map(|s| {
            let mut msgs = Vec::new();
            let mut stack = vec![s];
            while let Some(n) = stack.pop() {
                if let Some(rules) = n.get("x-kubernetes-validations").and_then(Value::as_array) {
                    msgs.extend(
                        rules
                            .iter()
                            .filter_map(|r| r["message"].as_str().map(str::to_owned)),
                    );
                }
                if let Some(p) = n.get("properties").and_then(Value::as_object) {
                    stack.extend(p.values().cloned());
                }
            }
            msgs
        })
        .collect();
    let operator_messages = [
        refusal(&contract(json!({"customer": "acme", "mode": "Threshold"}))),
        refusal(&contract(
            json!({"customer": "acme", "mode": "MinerToMiner"}),
        )),
        refusal(&contract(
            json!({"customer": "acme", "mode": "MinerToMiner", "workers": ["a"],
            "workerSelector": {"matchLabels": {"a": "b"}}}),
        )),
        refusal(&contract(
            json!({"customer": "acme", "mode": "MinerToMiner", "workers": ["a"],
            "start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}),
        )),
        refusal(
            &json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "StratumHub",
            "metadata": {"name": "h"}, "spec": {"unknownWorkers": "Quarantine"}}),
        ),
        refusal(
            &json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "StratumHub",
            "metadata": {"name": "h"}, "spec": {"unknownWorkers": "HousePool"}}),
        ),
        refusal(
            &json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "Customer",
            "metadata": {"name": "house"}, "spec": {}}),
        ),
    ];
    for msg in &operator_messages {
        assert!(
            cel_messages.iter().any(|cel| msg.contains(cel.as_str())),
            "operator message {msg:?} matches no CEL rule message in {cel_messages:#?}"
        );
    }
}

/// The CEL rules themselves, evaluated by a CEL interpreter with the Kubernetes extension
/// functions (kube's client-side validator), against the schema `crdgen` writes.
fn cel_errors(doc: &Value) -> Vec<String> {
    let kind = doc["kind"].as_str().unwrap();
    let schema = admission::crd_schema(&crd_of(kind)).unwrap();
    match kube::core::cel::Validator::new().validate(&schema, doc, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn cel_rules_accept_the_examples_and_refuse_what_they_promise() {
    let mut checked = 0;
    for (origin, doc) in example_documents() {
        if doc["apiVersion"] == "hashsched.io/v1alpha1" {
            assert_eq!(cel_errors(&doc), Vec::<String>::new(), "{origin}");
            checked += 1;
        }
    }
    assert_eq!(checked, 34, "every hashsched example went through CEL");

    let hub = |spec: Value| {
        json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "StratumHub",
            "metadata": {"name": "h", "namespace": "mining"}, "spec": spec})
    };
    let pool = |url: &str, tls: Value| {
        json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "PoolEndpoint",
            "metadata": {"name": "p", "namespace": "mining"},
            "spec": {"url": url, "user": "acme", "tls": tls}})
    };
    let cases = [
        (
            pool(
                "stratum+tcp://pool.example:3333",
                json!({"serverName": "pool.example"}),
            ),
            "tls is only for stratum+ssl:// pools",
        ),
        (
            contract(json!({"customer": "acme", "mode": "Threshold"})),
            "mode Threshold needs spec.contractedHashrate",
        ),
        (
            contract(json!({"customer": "acme", "mode": "MinerToMiner"})),
            "mode MinerToMiner needs spec.workers or spec.workerSelector",
        ),
        (
            contract(json!({"customer": "acme", "mode": "MinerToMiner", "workers": []})),
            "mode MinerToMiner needs spec.workers or spec.workerSelector",
        ),
        (
            contract(
                json!({"customer": "acme", "mode": "MinerToMiner", "workers": ["a"],
                "workerSelector": {"matchLabels": {"a": "b"}}}),
            ),
            "set spec.workers or spec.workerSelector, not both",
        ),
        (
            contract(
                json!({"customer": "acme", "mode": "MinerToMiner", "workers": ["a"],
                "start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}),
            ),
            "spec.end must be after spec.start",
        ),
        (
            hub(json!({"unknownWorkers": "Quarantine"})),
            "unknownWorkers: Quarantine needs spec.quarantinePool",
        ),
        (
            hub(json!({"unknownWorkers": "HousePool", "housePools": []})),
            "unknownWorkers: HousePool needs at least one entry in spec.housePools",
        ),
        (
            json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "Customer",
                "metadata": {"name": "house", "namespace": "mining"}, "spec": {}}),
            "the name \"house\" is reserved",
        ),
    ];
    for (doc, needle) in cases {
        let errors = cel_errors(&doc);
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{doc}: {errors:?} lacks {needle:?}"
        );
    }
    // And the near misses pass: a Threshold with a hashrate, a valid window, Quarantine with a pool.
    for ok in [
        contract(json!({"customer": "acme", "mode": "Threshold", "contractedHashrate": 5})),
        contract(
            json!({"customer": "acme", "mode": "MinerToMiner", "workers": ["a"],
            "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:01Z"}),
        ),
        hub(json!({"unknownWorkers": "Quarantine", "quarantinePool": "house-pool"})),
        pool(
            "stratum+ssl://pool.example:443",
            json!({"caSecretRef": {"name": "pool-ca", "key": "ca.crt"}, "serverName": "pool.example"}),
        ),
    ] {
        assert_eq!(cel_errors(&ok), Vec::<String>::new(), "{ok}");
    }
}

/// The project's one duration grammar prints only strings Kubernetes (and Go) parse to the same
/// value, so a duration from a status, a routing document or `--help` can go back into any
/// Kubernetes field.
#[test]
fn every_printed_duration_is_one_kubernetes_parses_the_same() {
    for ms in [
        0, 1, 500, 1_000, 59_000, 90_000, 90_500, 300_000, 5_400_000, 86_400_000,
    ] {
        let d = Duration::from_millis(ms);
        let text = d.to_string();
        let k: kube::core::Duration = text
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} is refused by kube::core::Duration: {e}"));
        assert_eq!(k, d.as_std(), "{text}");
    }
}
