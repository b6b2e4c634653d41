//! Names, patterns and small value types shared by the hashsched custom resources.
//!
//! One place for every fact the kinds share: the API group, the label that marks spares, the
//! reserved owner name `house`, the patterns that validate object references at admission, and the
//! roles a worker can play in a contract.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// API group of every hashsched kind.
pub const GROUP: &str = "hashsched.io";
/// API version of every hashsched kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every hashsched object.
pub const API_VERSION: &str = "hashsched.io/v1alpha1";
/// `kubectl get hashsched` lists every kind.
pub const CATEGORY: &str = "hashsched";

/// Owner name reserved for the farm's own machines (no Customer may be called this).
pub const HOUSE: &str = "house";

/// Label a Worker carries to say what it is for; see [`ROLE_SPARE`].
pub const LABEL_ROLE: &str = "hashsched.io/role";
/// Value of [`LABEL_ROLE`] that marks a house machine as a spare the operator may lend.
pub const ROLE_SPARE: &str = "spare";

/// DNS-1123 subdomain: what Kubernetes accepts as an object name (RE2 syntax).
pub const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Longest object name Kubernetes accepts.
pub const NAME_MAX_LEN: u32 = 253;
/// DNS-1123 label: names that also become label values and DNS names (Customers, owners).
pub const LABEL_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest DNS-1123 label.
pub const LABEL_NAME_MAX_LEN: u32 = 63;

/// Schema transform for enum types: removes the type's own description so that the field's doc
/// comment stays the field's description (kube's `Option<enum>` rewrite would overwrite it).
pub fn drop_description(schema: &mut Schema) {
    schema.remove("description");
}

/// Upper bound of list lengths in specs (keeps CEL cost estimates within apiserver limits).
pub const MAX_LIST_ITEMS: u32 = 1000;
/// Upper bound of pool lists (failover order; more than this is a configuration mistake).
pub const MAX_POOLS: u32 = 16;
/// Upper bound of free-text fields (display names, contact, messages).
pub const MAX_TEXT_LEN: u32 = 1024;

/// A key of a Secret in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret, in the namespace of the referring object.
    #[schemars(length(min = 1, max = NAME_MAX_LEN), pattern(NAME_PATTERN))]
    pub name: String,
    /// Key inside the Secret's `data`.
    #[schemars(length(min = 1, max = NAME_MAX_LEN), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// The part a worker plays (`Primary`, `Substitute`, `Spare`; the scheduler's `Benched` shows as
/// `Spare` of its contract): the product's one role type, shared with the hub's routing documents.
pub use hashsched_contract::routing::Role;

/// Who owns a worker: the farm itself (`house`) or a customer (the Customer's name).
///
/// Written as a plain string in YAML (`owner: house`, `owner: acme`) so that `kubectl get workers`
/// shows it as is; `house` is reserved, and Customers may not use that name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum WorkerOwner {
    /// The farm's own machine: a spare or a house miner.
    #[default]
    House,
    /// A machine the named Customer owns (hosting) or has bought.
    Customer(String),
}

impl WorkerOwner {
    /// The owning Customer's name, or `None` for the house.
    pub fn customer(&self) -> Option<&str> {
        match self {
            WorkerOwner::House => None,
            WorkerOwner::Customer(name) => Some(name),
        }
    }

    /// Whether the farm owns this machine.
    pub fn is_house(&self) -> bool {
        matches!(self, WorkerOwner::House)
    }

    /// The owner as written in YAML.
    pub fn as_str(&self) -> &str {
        match self {
            WorkerOwner::House => HOUSE,
            WorkerOwner::Customer(name) => name,
        }
    }
}

impl fmt::Display for WorkerOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for WorkerOwner {
    fn from(s: &str) -> Self {
        if s == HOUSE {
            WorkerOwner::House
        } else {
            WorkerOwner::Customer(s.to_owned())
        }
    }
}

impl Serialize for WorkerOwner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for WorkerOwner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        if s.is_empty() {
            return Err(serde::de::Error::custom(
                "owner must be \"house\" or the name of a Customer, not empty",
            ));
        }
        Ok(WorkerOwner::from(s.as_str()))
    }
}

impl JsonSchema for WorkerOwner {
    fn schema_name() -> Cow<'static, str> {
        "WorkerOwner".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Who owns the machine: `house` for the farm's own machines, or the name of a Customer in this namespace.",
            "type": "string",
            "minLength": 1,
            "maxLength": LABEL_NAME_MAX_LEN,
            "pattern": LABEL_NAME_PATTERN,
        })
    }
}

/// Where a worker is mining right now and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// RentalContract the worker serves; empty when it mines for the house.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// Customer of that contract; empty when it mines for the house.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// Part the worker plays: Primary, Substitute or Spare.
    pub role: Role,
    /// For a Substitute, the primary worker it stands in for (MinerToMiner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// When this assignment began.
    pub since: Time,
}

/// One entry of a worker's lend/return ledger: an assignment and when it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentRecord {
    /// RentalContract served; empty for house work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// Customer of that contract; empty for house work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// Part the worker played.
    pub role: Role,
    /// For a Substitute, the primary it stood in for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// When the assignment began.
    pub start: Time,
    /// When it ended; empty while it is the current assignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Time>,
    /// Why it began or ended, for people reading the ledger (e.g. `Lent: acme-s19-07 Dead`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_TEXT_LEN))]
    pub reason: Option<String>,
}

/// Most entries kept in a worker's assignment history; older ones are dropped first.
pub const MAX_HISTORY: usize = 20;

/// Appends `record` to `history`, dropping the oldest entries beyond [`MAX_HISTORY`].
pub fn push_history(history: &mut Vec<AssignmentRecord>, record: AssignmentRecord) {
    history.push(record);
    if history.len() > MAX_HISTORY {
        let excess = history.len() - MAX_HISTORY;
        history.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_reads_as_a_plain_string() {
        let house: WorkerOwner = serde_json::from_str("\"house\"").unwrap();
        assert!(house.is_house());
        let acme: WorkerOwner = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(acme.customer(), Some("acme"));
        assert_eq!(serde_json::to_string(&acme).unwrap(), "\"acme\"");
        assert_eq!(
            serde_json::to_string(&WorkerOwner::House).unwrap(),
            "\"house\""
        );
        assert!(serde_json::from_str::<WorkerOwner>("\"\"").is_err());
    }

    #[test]
    fn history_is_bounded_oldest_first_out() {
        let t = Time(jiff::Timestamp::UNIX_EPOCH);
        let mut history = Vec::new();
        for i in 0..(MAX_HISTORY + 5) {
            push_history(
                &mut history,
                AssignmentRecord {
                    contract: Some(format!("c{i}")),
                    customer: None,
                    role: Role::Substitute,
                    replaces: None,
                    start: t.clone(),
                    end: None,
                    reason: None,
                },
            );
        }
        assert_eq!(history.len(), MAX_HISTORY);
        assert_eq!(history[0].contract.as_deref(), Some("c5"));
        assert_eq!(
            history[MAX_HISTORY - 1].contract.as_deref(),
            Some(format!("c{}", MAX_HISTORY + 4).as_str())
        );
    }
}
