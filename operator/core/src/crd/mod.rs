//! The hashsched API: five namespaced kinds in `hashsched.io/v1alpha1`.
//!
//! - [`Worker`]: one physical miner (asset inventory, health, assignment ledger).
//! - [`Customer`]: who rents, and their pools.
//! - [`PoolEndpoint`]: one stratum pool account.
//! - [`RentalContract`]: machines or hashrate rented, policies, and the SLA ledger.
//! - [`StratumHub`]: a site's hub deployment.
//!
//! The Rust types are the single source of the CRD schemas: `hashsched crdgen` writes them to
//! `crds/` and the API reference to `docs/api.md`, and tests fail when the committed files drift.

pub mod admission;
pub mod common;
pub mod conditions;
pub mod customer;
pub mod generate;
pub mod pool_endpoint;
pub mod rental_contract;
pub mod stratum_hub;
pub mod worker;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use common::{
    API_VERSION, Assignment, AssignmentRecord, CATEGORY, GROUP, HOUSE, LABEL_ROLE, ROLE_SPARE,
    Role, SecretKeyRef, VERSION, WorkerOwner,
};
pub use customer::{Customer, CustomerSpec, CustomerStatus};
pub use pool_endpoint::{PoolEndpoint, PoolEndpointSpec, PoolEndpointStatus};
pub use rental_contract::{
    AccountingState, AssignedWorker, ContractMode, ContractPhase, FailoverPolicy, HealthPolicy,
    RentalContract, RentalContractSpec, RentalContractStatus, SlaPolicy, Uptime,
};
pub use stratum_hub::{
    ServiceType, StratumHub, StratumHubSpec, StratumHubStatus, UnknownWorkerPolicy,
};
pub use worker::{Worker, WorkerHashrate, WorkerPhase, WorkerSpec, WorkerStatus};

/// Every CRD of the API, in a stable order (the order `crdgen` writes them and docs list them),
/// tidied for the apiserver and `kubectl explain` (see [`tidy`]). Install these, not the bare
/// `Kind::crd()`, so that the cluster has exactly what `crds/` holds.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    [
        StratumHub::crd(),
        PoolEndpoint::crd(),
        Customer::crd(),
        Worker::crd(),
        RentalContract::crd(),
    ]
    .into_iter()
    .map(tidy)
    .collect()
}

/// Formats Kubernetes knows (kube-openapi's registry); schemars also emits `uint32`, `uint64`,
/// ..., which the apiserver does not recognize (the `minimum: 0` next to them already says it).
const KNOWN_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "binary",
    "date",
    "date-time",
    "duration",
    "password",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
];

/// Two fixes to the derived schemas: Rust doc comments are hard-wrapped at 100 columns while
/// `kubectl explain` re-wraps descriptions, so the lines of each paragraph are joined (a blank
/// line still separates paragraphs); and formats the apiserver does not know are dropped.
fn tidy(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|key, v| {
                    // A property *named* `format` has an object schema, not a string: kept.
                    key != "format" || v.as_str().is_none_or(|f| KNOWN_FORMATS.contains(&f))
                });
                add_format_hint(map);
                for (key, v) in map.iter_mut() {
                    match v {
                        serde_json::Value::String(s) if key == "description" => {
                            *s = join_paragraph_lines(s);
                        }
                        _ => walk(v),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    walk(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

/// A field's doc comment replaces its type's description, so `kubectl explain` would not say how
/// to write a quantity: append the format, recognized by the quantity's pattern.
fn add_format_hint(map: &mut serde_json::Map<String, serde_json::Value>) {
    use crate::quantity::{DURATION_PATTERN, HASHRATE_PATTERN, PERCENTAGE_PATTERN};
    let hint = match map.get("pattern").and_then(|p| p.as_str()) {
        Some(HASHRATE_PATTERN) => {
            "Format: a number with a unit (`104 TH/s`, `1.5PH/s`, `950 GH/s`) or an integer of H/s."
        }
        Some(DURATION_PATTERN) => "Format: a duration such as `90s`, `5m` or `1h30m`.",
        Some(PERCENTAGE_PATTERN) => "Format: a percentage such as `5%` or `99.95%`, or an integer.",
        _ => return,
    };
    if let Some(serde_json::Value::String(desc)) = map.get_mut("description")
        && !desc.contains("Format:")
    {
        desc.push_str("\n\n");
        desc.push_str(hint);
    }
}

fn join_paragraph_lines(s: &str) -> String {
    s.split("\n\n")
        .map(|para| {
            para.split('\n')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_joined_per_paragraph() {
        assert_eq!(join_paragraph_lines("a\nb\n\nc\nd"), "a b\n\nc d");
        let crds = all_crds();
        assert_eq!(crds.len(), 5);
        let yaml = serde_json::to_string(&crds).unwrap();
        assert!(!yaml.contains("uint"), "unsigned formats are dropped");
        assert!(yaml.contains("\"format\":\"date-time\""));
        assert!(yaml.contains("Nameplate hashrate (e.g. `104 TH/s`). Health tests compare the share rate against it, and Threshold"));
    }
}
