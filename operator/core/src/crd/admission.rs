//! Admission without an apiserver: checks an object against the generated CRD schema the way
//! kube-apiserver does, then loads it into its Rust type.
//!
//! Local mode reads manifests from a folder, so nothing else would reject `expectedHashrate: -5`
//! or `mode: Rental`. [`admit`] applies the schema's structural checks (types, required fields,
//! enums, patterns, bounds, list-set/list-map uniqueness, unknown fields that the apiserver
//! would prune), then the schema's CEL rules (`x-kubernetes-validations`, evaluated from the
//! generated CRD by kube's CEL, the rules the apiserver runs, written once), then each kind's
//! `validate()` for what neither can express. The same schema
//! walk also backs [`check_structural`], which `crdgen` runs before writing a CRD.

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use super::{API_VERSION, Customer, PoolEndpoint, RentalContract, StratumHub, Worker, all_crds};

/// A manifest that the apiserver would refuse, with every reason found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("{0}: not a hashsched object (apiVersion must be {API_VERSION})")]
    NotOurs(String),
    #[error("unknown kind {0:?} in {API_VERSION}")]
    UnknownKind(String),
    #[error("{kind} {name}: {}", .errors.join("; "))]
    Invalid {
        kind: String,
        name: String,
        errors: Vec<String>,
    },
}

/// A hashsched object that passed admission.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    StratumHub(Box<StratumHub>),
    PoolEndpoint(Box<PoolEndpoint>),
    Customer(Box<Customer>),
    Worker(Box<Worker>),
    RentalContract(Box<RentalContract>),
}

/// Checks `value` (one manifest, as JSON) like kube-apiserver would and loads it.
pub fn admit(value: &Value) -> Result<Object, AdmissionError> {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != API_VERSION {
        return Err(AdmissionError::NotOurs(format!(
            "apiVersion {api_version:?}, kind {kind:?}"
        )));
    }
    let crd = all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .ok_or_else(|| AdmissionError::UnknownKind(kind.to_owned()))?;
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let invalid = |errors: Vec<String>| AdmissionError::Invalid {
        kind: kind.to_owned(),
        name: name.clone(),
        errors,
    };
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push("metadata.name: Required value".to_owned());
    }
    errors.extend(validate_against_crd(&crd, value));
    if errors.is_empty() {
        errors.extend(cel_errors(&crd, value));
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let parsed = match kind {
        "StratumHub" => serde_json::from_value::<StratumHub>(value.clone()).map(|o| {
            let check = o.spec.validate();
            (Object::StratumHub(Box::new(o)), check)
        }),
        "PoolEndpoint" => serde_json::from_value::<PoolEndpoint>(value.clone()).map(|o| {
            let check = o.spec.validate();
            (Object::PoolEndpoint(Box::new(o)), check)
        }),
        "Customer" => serde_json::from_value::<Customer>(value.clone())
            .map(|o| (Object::Customer(Box::new(o)), Ok(()))),
        "Worker" => serde_json::from_value::<Worker>(value.clone()).map(|o| {
            let check = o.spec.validate();
            (Object::Worker(Box::new(o)), check)
        }),
        "RentalContract" => serde_json::from_value::<RentalContract>(value.clone()).map(|o| {
            let check = o.spec.validate();
            (Object::RentalContract(Box::new(o)), check)
        }),
        other => return Err(AdmissionError::UnknownKind(other.to_owned())),
    };
    match parsed {
        Ok((object, Ok(()))) => Ok(object),
        Ok((_, Err(rule))) => Err(invalid(vec![rule])),
        Err(e) => Err(invalid(vec![e.to_string()])),
    }
}

/// Errors of `value` against the CRD's schema (empty when valid). `apiVersion`, `kind` and
/// `metadata` are the apiserver's own business and are not checked here.
pub fn validate_against_crd(crd: &CustomResourceDefinition, value: &Value) -> Vec<String> {
    let Some(schema) = crd_schema(crd) else {
        return vec!["CRD has no schema".to_owned()];
    };
    let mut errors = Vec::new();
    let Some(obj) = value.as_object() else {
        return vec!["<root>: must be an object".to_owned()];
    };
    let props = schema.get("properties").and_then(Value::as_object);
    for (key, v) in obj {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(key)) {
            Some(sub) => validate_value(v, sub, key, &mut errors),
            None => errors.push(format!("{key}: unknown field")),
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(r) {
                errors.push(format!("{r}: Required value"));
            }
        }
    }
    errors
}

/// The CRD's CEL rules (`x-kubernetes-validations`) evaluated against `value` by kube's CEL,
/// as the apiserver evaluates them: `path: message` for each rule that fails.
pub fn cel_errors(crd: &CustomResourceDefinition, value: &Value) -> Vec<String> {
    let Some(schema) = crd_schema(crd) else {
        return vec!["CRD has no schema".to_owned()];
    };
    match kube::core::cel::Validator::new().validate(&schema, value, None) {
        Ok(()) => Vec::new(),
        Err(failed) => failed.iter().map(ToString::to_string).collect(),
    }
}

/// The CRD's `openAPIV3Schema` as JSON.
pub fn crd_schema(crd: &CustomResourceDefinition) -> Option<Value> {
    let schema = crd
        .spec
        .versions
        .first()?
        .schema
        .as_ref()?
        .open_api_v3_schema
        .as_ref()?;
    serde_json::to_value(schema).ok()
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One value against one schema node, appending `path: message` errors in the apiserver's words.
fn validate_value(v: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    let flag = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
    if v.is_null() {
        if !flag("nullable") {
            errors.push(format!("{path}: Invalid value: null: must not be null"));
        }
        return;
    }
    let actual = type_of(v);
    if flag("x-kubernetes-int-or-string") {
        if actual != "integer" && actual != "string" {
            errors.push(format!(
                "{path}: Invalid value: \"{actual}\": {path} in body must be of type integer or string"
            ));
            return;
        }
    } else if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let ok = expected == actual || (expected == "number" && actual == "integer");
        if !ok {
            errors.push(format!(
                "{path}: Invalid value: \"{actual}\": {path} in body must be of type {expected}"
            ));
            return;
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(v)
    {
        let allowed: Vec<String> = values.iter().map(Value::to_string).collect();
        errors.push(format!(
            "{path}: Unsupported value: {v}: supported values: {}",
            allowed.join(", ")
        ));
    }
    match v {
        Value::String(s) => check_string(s, schema, path, errors),
        Value::Number(n) => check_number(n.as_f64().unwrap_or(f64::NAN), schema, path, errors),
        Value::Array(items) => check_array(items, schema, path, errors),
        Value::Object(map) => check_object(map, schema, path, errors),
        _ => {}
    }
}

fn check_string(s: &str, schema: &Value, path: &str, errors: &mut Vec<String>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errors.push(format!(
            "{path}: Too long: may not be more than {max} characters"
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errors.push(format!(
            "{path}: Invalid value: {s:?}: {path} in body should be at least {min} chars long"
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => errors.push(format!(
                "{path}: Invalid value: {s:?}: {path} in body should match '{pattern}'"
            )),
            Err(e) => errors.push(format!("{path}: schema pattern does not compile: {e}")),
        }
    }
}

fn check_number(n: f64, schema: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        errors.push(format!(
            "{path}: Invalid value: {n}: {path} in body should be greater than or equal to {min}"
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        errors.push(format!(
            "{path}: Invalid value: {n}: {path} in body should be less than or equal to {max}"
        ));
    }
}

fn check_array(items: &[Value], schema: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        errors.push(format!(
            "{path}: Too many: {}: must have at most {max} items",
            items.len()
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate_value(item, item_schema, &format!("{path}[{i}]"), errors);
        }
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    errors.push(format!("{path}[{i}]: Duplicate value: {item}"));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let key: Vec<String> = keys
                    .iter()
                    .map(|k| item.get(k).map(Value::to_string).unwrap_or_default())
                    .collect();
                if !seen.insert(key.clone()) {
                    errors.push(format!("{path}[{i}]: Duplicate value: {}", key.join(",")));
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    map: &serde_json::Map<String, Value>,
    schema: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    for (key, v) in map {
        let sub_path = format!("{path}.{key}");
        match (props.and_then(|p| p.get(key)), additional) {
            (Some(sub), _) => validate_value(v, sub, &sub_path, errors),
            (None, Some(add)) if add.is_object() => validate_value(v, add, &sub_path, errors),
            _ if preserve => {}
            // The apiserver would silently prune it; a typo must not vanish silently.
            _ => errors.push(format!("{sub_path}: unknown field")),
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                errors.push(format!("{path}.{r}: Required value"));
            }
        }
    }
}

/// Ways a schema is not structural or would be refused by kube-apiserver (empty when fine):
/// missing `type`, `$ref`, properties next to `additionalProperties`, misuse of
/// `x-kubernetes-int-or-string`, types/descriptions/defaults inside `anyOf`/`oneOf`/`allOf`/`not`,
/// arrays without `items`, list-maps whose keys are not required, defaults that do not validate,
/// patterns that do not compile, and fields without a description.
pub fn check_structural(schema: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    walk_structural(schema, "<root>", true, &mut errors);
    errors
}

fn walk_structural(s: &Value, path: &str, is_root: bool, errors: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        errors.push(format!("{path}: schema must be an object"));
        return;
    };
    let flag = |k: &str| obj.get(k).and_then(Value::as_bool) == Some(true);
    for forbidden in [
        "$ref",
        "definitions",
        "$defs",
        "$schema",
        "const",
        "examples",
    ] {
        if obj.contains_key(forbidden) {
            errors.push(format!(
                "{path}: `{forbidden}` is not allowed in a CRD schema"
            ));
        }
    }
    let int_or_string = flag("x-kubernetes-int-or-string");
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    match obj.get("type").and_then(Value::as_str) {
        Some(_) if int_or_string => {
            errors.push(format!(
                "{path}: type must be empty with x-kubernetes-int-or-string"
            ));
        }
        Some(t) => {
            if !matches!(
                t,
                "object" | "array" | "string" | "integer" | "number" | "boolean"
            ) {
                errors.push(format!("{path}: unknown type {t:?}"));
            }
        }
        None if int_or_string || preserve => {}
        None => errors.push(format!("{path}: type must not be empty")),
    }
    if obj.get("type").is_some_and(|t| !t.is_string()) {
        errors.push(format!("{path}: type must be a single string"));
    }
    if !is_root
        && !path.ends_with("[]")
        && !path.ends_with("{}")
        && !obj.contains_key("description")
    {
        errors.push(format!("{path}: field has no description"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        errors.push(format!(
            "{path}: properties and additionalProperties are mutually exclusive"
        ));
    }
    if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
        errors.push(format!(
            "{path}: additionalProperties: false is not allowed"
        ));
    }
    if obj.get("type").and_then(Value::as_str) == Some("array") && !obj.contains_key("items") {
        errors.push(format!("{path}: arrays must specify items"));
    }
    for junctor in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = obj.get(junctor).and_then(Value::as_array) {
            let int_or_string_pattern = junctor == "anyOf"
                && int_or_string
                && branches.as_slice()
                    == [
                        serde_json::json!({"type": "integer"}),
                        serde_json::json!({"type": "string"}),
                    ];
            if !int_or_string_pattern {
                for (i, b) in branches.iter().enumerate() {
                    check_nested(b, &format!("{path}.{junctor}[{i}]"), errors);
                }
            }
        }
    }
    if let Some(not) = obj.get("not") {
        check_nested(not, &format!("{path}.not"), errors);
    }
    if let Some(pattern) = obj.get("pattern").and_then(Value::as_str)
        && let Err(e) = regex::Regex::new(pattern)
    {
        errors.push(format!("{path}: pattern does not compile: {e}"));
    }
    if let Some(default) = obj.get("default") {
        let mut errs = Vec::new();
        validate_value(default, s, path, &mut errs);
        errors.extend(
            errs.into_iter()
                .map(|e| format!("default does not validate: {e}")),
        );
    }
    if obj.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        let required: Vec<&str> = obj
            .get("items")
            .and_then(|i| i.get("required"))
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match obj
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
        {
            Some(keys) if !keys.is_empty() => {
                for k in keys.iter().filter_map(Value::as_str) {
                    if !required.contains(&k) {
                        errors.push(format!("{path}: list-map key {k:?} must be required"));
                    }
                }
            }
            _ => errors.push(format!(
                "{path}: list-type map needs x-kubernetes-list-map-keys"
            )),
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            walk_structural(sub, &format!("{path}.{k}"), false, errors);
        }
    }
    if let Some(items) = obj.get("items") {
        walk_structural(items, &format!("{path}[]"), false, errors);
    }
    if let Some(add) = obj.get("additionalProperties").filter(|a| a.is_object()) {
        walk_structural(add, &format!("{path}{{}}"), false, errors);
    }
}

/// Inside a logical junctor only value validations are allowed.
fn check_nested(s: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        return;
    };
    for forbidden in [
        "type",
        "description",
        "default",
        "nullable",
        "additionalProperties",
        "title",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
    ] {
        if obj.contains_key(forbidden) {
            errors.push(format!(
                "{path}: `{forbidden}` must not be set inside a logical junctor"
            ));
        }
    }
}
