//! The Helm chart (charts/hashsched) without a helm binary: values against values.schema.json,
//! the chart's CRDs and RBAC identical to their one source, every template rendered with the
//! default values (and with every optional part switched on) by a small Go-template substitute
//! (`chart_template`), each object's structure checked by a typed round trip through k8s-openapi,
//! and every image reference equal to the one default (values.yaml `image`).

mod chart_template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    repo().join("charts/hashsched")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn default_values() -> Value {
    serde_yaml::from_str(&read(&chart().join("values.yaml"))).expect("values.yaml is YAML")
}

/// The default values with every optional object switched on and every list/map filled.
fn all_on_values() -> Value {
    let mut v = default_values();
    v["replicaCount"] = json!(3);
    v["watchNamespace"] = json!("farm");
    v["logJson"] = json!(false);
    v["podAnnotations"] = json!({"example.com/team": "mining"});
    v["imagePullSecrets"] = json!([{"name": "regcred"}]);
    v["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    v["tolerations"] = json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]);
    v["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}}}}]}});
    v["serviceAccount"]["annotations"] = json!({"example.com/role": "hashsched"});
    v["serviceMonitor"]["enabled"] = json!(true);
    v["serviceMonitor"]["labels"] = json!({"release": "prom"});
    v["podMonitor"]["enabled"] = json!(true);
    v["podMonitor"]["labels"] = json!({"release": "prom"});
    v["prometheusRule"]["labels"] = json!({"release": "prom"});
    v["dashboards"]["labels"] = json!({"team": "farm"});
    v
}

fn schema_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&read(&chart().join("values.schema.json")))
        .expect("values.schema.json is JSON");
    jsonschema::validator_for(&schema).expect("values.schema.json is a valid JSON schema")
}

fn schema_errors(values: &Value) -> Vec<String> {
    schema_validator()
        .iter_errors(values)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn default_and_all_on_values_match_the_schema() {
    assert_eq!(schema_errors(&default_values()), Vec::<String>::new());
    assert_eq!(schema_errors(&all_on_values()), Vec::<String>::new());
}

/// A change to the default values that the schema must refuse.
type Mutation = Box<dyn Fn(&mut Value)>;

#[test]
fn the_schema_rejects_wrong_types_and_unknown_keys() {
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "replicaCount as a string",
            Box::new(|v| v["replicaCount"] = json!("2")),
        ),
        ("replicaCount 0", Box::new(|v| v["replicaCount"] = json!(0))),
        (
            "image tag as a number",
            Box::new(|v| v["image"]["tag"] = json!(1.0)),
        ),
        (
            "image pull policy typo",
            Box::new(|v| v["image"]["pullPolicy"] = json!("Sometimes")),
        ),
        (
            "unknown image key",
            Box::new(|v| v["image"]["name"] = json!("x")),
        ),
        (
            "unknown top-level key",
            Box::new(|v| v["replicas"] = json!(2)),
        ),
        (
            "metrics port below 1024",
            Box::new(|v| v["metricsPort"] = json!(80)),
        ),
        (
            "metrics port as a string",
            Box::new(|v| v["metricsPort"] = json!("8080")),
        ),
        (
            "serviceMonitor.enabled as a string",
            Box::new(|v| v["serviceMonitor"]["enabled"] = json!("yes")),
        ),
        (
            "podMonitor interval not a duration",
            Box::new(|v| v["podMonitor"]["interval"] = json!("fast")),
        ),
        (
            "label value as a number",
            Box::new(|v| v["prometheusRule"]["labels"] = json!({"release": 1})),
        ),
        (
            "dashboards without enabled",
            Box::new(|v| {
                v["dashboards"].as_object_mut().unwrap().remove("enabled");
            }),
        ),
        (
            "watchNamespace not a DNS label",
            Box::new(|v| v["watchNamespace"] = json!("Farm_A")),
        ),
        (
            "logJson as a string",
            Box::new(|v| v["logJson"] = json!("true")),
        ),
        (
            "tolerations as a map",
            Box::new(|v| v["tolerations"] = json!({"key": "x"})),
        ),
    ];
    for (what, change) in cases {
        let mut v = default_values();
        change(&mut v);
        assert!(
            !schema_errors(&v).is_empty(),
            "values.schema.json accepts {what}: {v}"
        );
    }
}

/// `helm template` substitute: every template of the chart with `values`, as (file, text).
fn render_all(values: &Value) -> Vec<(String, String)> {
    let ctx =
        chart_template::Context::new(&chart(), values.clone(), "hashsched", "hashsched-system");
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(chart().join("templates"))
        .expect("templates/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let text = read(&chart().join("templates").join(&name));
        let rendered =
            chart_template::render(&ctx, &text).unwrap_or_else(|e| panic!("templates/{name}: {e}"));
        // (`{{` may remain: alert templates and legend formats inside the included files.)
        assert!(
            !rendered.contains("<no value>"),
            "templates/{name} printed a missing value:\n{rendered}"
        );
        out.push((name, rendered));
    }
    out
}

/// Every Kubernetes object the chart renders with `values`.
fn objects(values: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, text) in render_all(values) {
        if name == "NOTES.txt" {
            continue;
        }
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("templates/{name} is not YAML: {e}\n{text}"));
            if v.is_null() {
                continue;
            }
            for key in ["apiVersion", "kind"] {
                assert!(
                    v[key].is_string(),
                    "templates/{name}: object without {key}: {v}"
                );
            }
            assert!(
                v["metadata"]["name"].is_string(),
                "templates/{name}: object without metadata.name: {v}"
            );
            out.push(v);
        }
    }
    out
}

use serde::Deserialize;

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            let have: Vec<_> = objs
                .iter()
                .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
                .collect();
            panic!("no {kind} {name}; rendered: {have:?}")
        })
}

/// Deserialises into the typed object and back: a misspelt or misplaced field is dropped by the
/// typed struct, so the round trip differs from what the template wrote.
fn typed_round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(obj: &Value) {
    let typed: T = serde_json::from_value(obj.clone())
        .unwrap_or_else(|e| panic!("{} {}: {e}", obj["kind"], obj["metadata"]["name"]));
    let back = serde_json::to_value(&typed).expect("serialises");
    assert_eq!(
        &back, obj,
        "{} {} has fields Kubernetes does not know (left: typed round trip, right: rendered)",
        obj["kind"], obj["metadata"]["name"]
    );
}

fn check_structure(objs: &[Value]) {
    use k8s_openapi::api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Service, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    };
    for o in objs {
        match o["kind"].as_str().unwrap_or_default() {
            "Deployment" => typed_round_trip::<Deployment>(o),
            "Service" => typed_round_trip::<Service>(o),
            "ServiceAccount" => typed_round_trip::<ServiceAccount>(o),
            "ConfigMap" => typed_round_trip::<ConfigMap>(o),
            "ClusterRole" => typed_round_trip::<ClusterRole>(o),
            "ClusterRoleBinding" => typed_round_trip::<ClusterRoleBinding>(o),
            "ServiceMonitor" | "PodMonitor" | "PrometheusRule" => {
                assert_eq!(o["apiVersion"], "monitoring.coreos.com/v1", "{o}");
                assert!(o["spec"].is_object(), "{o}");
            }
            other => panic!("the chart renders a {other} this test does not check"),
        }
    }
}

fn the_image() -> String {
    let v = default_values();
    format!(
        "{}:{}",
        v["image"]["repository"].as_str().expect("image.repository"),
        v["image"]["tag"].as_str().expect("image.tag")
    )
}

fn operator_container(objs: &[Value]) -> &Value {
    let d = find(objs, "Deployment", "hashsched-operator");
    &d["spec"]["template"]["spec"]["containers"][0]
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

#[test]
fn default_values_render_the_operator_least_privileged_and_probed() {
    let objs = objects(&default_values());
    check_structure(&objs);
    let kinds: Vec<_> = objs
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    for k in [
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "PrometheusRule",
        "ConfigMap",
    ] {
        assert!(
            kinds.iter().any(|x| x == k),
            "default render lacks a {k}: {kinds:?}"
        );
    }
    // Off by default: they need the Prometheus operator's CRDs.
    assert!(
        !kinds
            .iter()
            .any(|k| k == "ServiceMonitor" || k == "PodMonitor"),
        "{kinds:?}"
    );

    let d = find(&objs, "Deployment", "hashsched-operator");
    assert_eq!(d["spec"]["replicas"], 1);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "hashsched-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = operator_container(&objs);
    assert_eq!(c["image"], the_image());
    assert_eq!(c["command"], json!(["/usr/local/bin/hashsched"]));
    assert_eq!(
        args(c),
        vec![
            "operator",
            "--metrics-addr=0.0.0.0:8080",
            "--leader-election=false",
            "--log-json"
        ]
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    // The metrics Service selects the operator pods.
    let svc = find(&objs, "Service", "hashsched-operator-metrics");
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&d["spec"]["template"]["metadata"]["labels"][k], v);
    }
    // The binding gives the ServiceAccount the ClusterRole.
    let b = find(&objs, "ClusterRoleBinding", "hashsched-operator");
    assert_eq!(b["roleRef"]["name"], "hashsched-operator");
    assert_eq!(b["subjects"][0]["name"], "hashsched-operator");
    assert_eq!(b["subjects"][0]["namespace"], "hashsched-system");
}

#[test]
fn every_optional_part_renders_and_replicas_turn_leader_election_on() {
    let objs = objects(&all_on_values());
    check_structure(&objs);
    let c = operator_container(&objs);
    assert_eq!(
        args(c),
        vec![
            "operator",
            "--metrics-addr=0.0.0.0:8080",
            "--leader-election=true",
            "--namespace=farm"
        ]
    );
    let d = find(&objs, "Deployment", "hashsched-operator");
    assert_eq!(d["spec"]["replicas"], 3);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["imagePullSecrets"][0]["name"], "regcred");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["example.com/team"],
        "mining"
    );
    let sm = find(&objs, "ServiceMonitor", "hashsched-operator");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["honorLabels"], true);
    let svc = find(&objs, "Service", "hashsched-operator-metrics");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor does not select the Service"
        );
    }
    let pm = find(&objs, "PodMonitor", "hashsched-hubs");
    // Selects the pods the operator renders for hubs, and names the job the hub alerts select.
    let hub_labels = hashsched_operator::scheduler::render::kubernetes::hub_labels("any");
    for (k, v) in pm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            hub_labels.get(k).map(String::as_str),
            v.as_str(),
            "PodMonitor label {k}"
        );
    }
    assert_eq!(pm["spec"]["jobLabel"], "app.kubernetes.io/name");
    assert_eq!(hub_labels["app.kubernetes.io/name"], "stratum-hub");
    let rules = read(&chart().join("files/rules/hashsched-scheduler.rules.yml"));
    assert!(rules.contains("up{job=\"stratum-hub\"}"));
    assert_eq!(pm["spec"]["namespaceSelector"]["any"], true);
    let sa = find(&objs, "ServiceAccount", "hashsched-operator");
    assert_eq!(
        sa["metadata"]["annotations"]["example.com/role"],
        "hashsched"
    );
    let cm = find(&objs, "ConfigMap", "hashsched-dashboards");
    assert_eq!(cm["metadata"]["labels"]["team"], "farm");
}

#[test]
fn disabled_parts_render_nothing() {
    let mut v = default_values();
    v["prometheusRule"]["enabled"] = json!(false);
    v["dashboards"]["enabled"] = json!(false);
    let kinds: Vec<_> = objects(&v)
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !kinds
            .iter()
            .any(|k| k == "PrometheusRule" || k == "ConfigMap"),
        "{kinds:?}"
    );
}

#[test]
fn the_cluster_role_carries_the_operator_rbac_file_unchanged() {
    let source: Value = serde_yaml::from_str(&read(&chart().join("files/operator-rbac.yaml")))
        .expect("files/operator-rbac.yaml is YAML");
    let rules = source["rules"].as_array().expect("`rules:` list");
    assert!(!rules.is_empty());
    let objs = objects(&default_values());
    let role = find(&objs, "ClusterRole", "hashsched-operator");
    assert_eq!(role["rules"], source["rules"]);
    // Least privilege: no wildcard anywhere.
    for r in rules {
        for key in ["apiGroups", "resources", "verbs"] {
            for item in r[key].as_array().into_iter().flatten() {
                assert_ne!(item, "*", "wildcard {key} in {r}");
            }
        }
    }
}

#[test]
fn the_prometheus_rules_and_dashboards_are_the_tested_files() {
    let objs = objects(&default_values());
    for (name, file) in [
        ("hashsched-hub", "hashsched-hub.rules.yml"),
        ("hashsched-scheduler", "hashsched-scheduler.rules.yml"),
    ] {
        let pr = find(&objs, "PrometheusRule", name);
        let plain: Value = serde_yaml::from_str(&read(&chart().join("files/rules").join(file)))
            .expect("rules YAML");
        assert_eq!(
            pr["spec"], plain,
            "PrometheusRule {name} differs from files/rules/{file}"
        );
    }
    let cm = find(&objs, "ConfigMap", "hashsched-dashboards");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "hashsched");
    let data = cm["data"].as_object().expect("data");
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(chart().join("files/dashboards")).expect("dashboards") {
        let p = e.expect("entry").path();
        files.insert(
            p.file_name().unwrap().to_string_lossy().into_owned(),
            read(&p),
        );
    }
    assert!(files.len() >= 6, "{:?}", files.keys());
    assert_eq!(data.len(), files.len());
    for (name, text) in files {
        assert_eq!(
            data[&name], text,
            "dashboard {name} differs in the ConfigMap"
        );
    }
    let bytes: usize = data.values().map(|v| v.as_str().unwrap().len()).sum();
    assert!(
        bytes < 900 * 1024,
        "dashboards ConfigMap too big for the apiserver: {bytes} bytes"
    );
}

#[test]
fn the_charts_crds_are_the_generated_ones() {
    let names = |dir: PathBuf| -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .expect("crds dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let top = names(repo().join("crds"));
    assert_eq!(top.len(), 5, "{top:?}");
    assert_eq!(
        names(chart().join("crds")),
        top,
        "chart crds/ holds other files than crds/"
    );
    for f in top {
        assert!(
            read(&repo().join("crds").join(&f)) == read(&chart().join("crds").join(&f)),
            "charts/hashsched/crds/{f} differs from crds/{f}: cp crds/*.yaml charts/hashsched/crds/"
        );
    }
}

#[test]
fn notes_tell_the_next_commands_and_the_crd_upgrade() {
    let notes = render_all(&default_values())
        .into_iter()
        .find(|(n, _)| n == "NOTES.txt")
        .expect("NOTES.txt")
        .1;
    for needle in [
        "kubectl -n hashsched-system rollout status deployment/hashsched-operator",
        "kubectl apply -f examples/",
        "kubectl get workers,rentalcontracts -A",
        "kubectl apply --server-side -f crds/",
        "Grafana folder \"hashsched\"",
    ] {
        assert!(
            notes.contains(needle),
            "NOTES.txt lacks `{needle}`:\n{notes}"
        );
    }
}

#[test]
fn one_image_everywhere_and_versions_agree() {
    let image = the_image();
    let v = default_values();
    let chart_yaml: Value =
        serde_yaml::from_str(&read(&chart().join("Chart.yaml"))).expect("Chart.yaml");
    assert_eq!(
        chart_yaml["appVersion"], v["image"]["tag"],
        "Chart appVersion vs image.tag"
    );
    assert_eq!(
        v["image"]["tag"],
        env!("CARGO_PKG_VERSION"),
        "image tag vs the workspace version"
    );
    // Every image the chart renders, with everything on.
    let mut seen = Vec::new();
    fn images(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if k == "image" {
                        out.push(x.as_str().unwrap_or_default().to_owned());
                    } else {
                        images(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| images(x, out)),
            _ => {}
        }
    }
    for o in objects(&all_on_values()) {
        images(&o, &mut seen);
    }
    assert!(!seen.is_empty());
    for s in &seen {
        assert_eq!(s, &image);
    }
    // Documentation and the Dockerfile name the same image.
    let repo_name = v["image"]["repository"].as_str().unwrap();
    let owner = repo_name.rsplit_once('/').map(|(o, _)| o).unwrap();
    for doc in [
        "README.md",
        "docs/install.md",
        "Dockerfile",
        "charts/hashsched/README.md",
    ] {
        let text = read(&repo().join(doc));
        let mut found = 0;
        for (i, _) in text.match_indices(owner) {
            let word: String = text[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !"`\"')|,".contains(*c))
                .collect();
            // The hub's own former image name and the registry owner alone are not references.
            if word.contains(':') {
                assert_eq!(word, image, "{doc} names another image");
                found += 1;
            }
        }
        assert!(found > 0, "{doc} does not name the image {image}");
    }
}

#[test]
fn the_renderer_defaults_hubs_to_the_chart_image() {
    assert_eq!(
        hashsched_operator::scheduler::render::kubernetes::DEFAULT_HUB_IMAGE,
        the_image()
    );
}

#[test]
fn the_chart_readme_lists_every_value() {
    fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) if !o.is_empty() => {
                for (k, x) in o {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    // Free-form maps (resources, selectors) are documented as one value.
                    if ["resources", "podMonitor.namespaceSelector"].contains(&p.as_str()) {
                        out.push(p);
                    } else {
                        leaves(&p, x, out);
                    }
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut keys = Vec::new();
    leaves("", &default_values(), &mut keys);
    let readme = read(&chart().join("README.md"));
    for k in keys {
        assert!(
            readme.contains(&format!("| `{k}` |")),
            "charts/hashsched/README.md has no table row for `{k}`"
        );
    }
}
