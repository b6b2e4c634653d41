//! Customer: someone who rents hashrate, with the pools their hashrate goes to.
//!
//! Contracts name a Customer; workers a customer owns say so in `spec.owner`. The Customer's status
//! adds up its contracts so that `kubectl get customers` answers "are we delivering?".

// `#[kube(printcolumn(...))]` repeats `type_`, `priority`, ... once per column by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{MAX_POOLS, MAX_TEXT_LEN, NAME_MAX_LEN, NAME_PATTERN};
use crate::quantity::{Hashrate, Percentage};

/// A customer renting hashrate.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hashsched.io",
    version = "v1alpha1",
    kind = "Customer",
    namespaced,
    derive = "PartialEq",
    status = "CustomerStatus",
    shortname = "cust",
    category = "hashsched",
    doc = "Customer is someone renting hashrate: a display name, a contact, and the pools (in failover order) that receive the hashrate of their contracts. The name `house` is reserved for the farm itself.",
    validation = Rule::new("self.metadata.name != 'house'").message("the name \"house\" is reserved for the farm's own workers").reason(Reason::FieldValueInvalid),
    validation = Rule::new("size(self.metadata.name) <= 63").message("a Customer name must be at most 63 characters (it is used as a label value)").reason(Reason::FieldValueInvalid),
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Contracts", type_ = "integer", json_path = ".status.activeContracts"),
    printcolumn(name = "Contracted", type_ = "string", json_path = ".status.contractedHashrate"),
    printcolumn(name = "Delivered", type_ = "string", json_path = ".status.deliveredHashrate"),
    printcolumn(name = "Uptime", type_ = "string", json_path = ".status.uptime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerSpec {
    /// Human-readable name shown on dashboards (e.g. `Acme Mining Ltd.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,
    /// Who to call when their hashrate is short (free text: e-mail, phone, ticket queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_TEXT_LEN))]
    pub contact: Option<String>,
    /// PoolEndpoint names in this namespace, in failover order: the hub mines to the first that
    /// works. Contracts may override this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POOLS), inner(length(min = 1, max = NAME_MAX_LEN), pattern(NAME_PATTERN)))]
    pub pools: Vec<String>,
}

/// Totals over the customer's contracts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerStatus {
    /// Contracts of this customer in phase Active, Degraded or Breached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_contracts: Option<u32>,
    /// Sum of the active contracts' contracted hashrate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contracted_hashrate: Option<Hashrate>,
    /// Sum of the hashrate delivered to the customer's pools (accepted shares, 5-minute window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_hashrate: Option<Hashrate>,
    /// Up slots over observed slots, over all of the customer's contracts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<Percentage>,
    /// Conditions: `Ready`, `SpecValid` (e.g. a pool that does not exist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
