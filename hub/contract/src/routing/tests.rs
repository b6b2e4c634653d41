//! Tests of the routing document: parsing, every validation error with its path, secrets, routes.

use super::*;

const GOOD: &str = r#"
apiVersion: routing.hashsched.io/v1
generation: 42
pools:
  - name: acme-main
    url: stratum+tcp://pool.acme.example:3333
    user: acme
    password: { public: x }
  - name: acme-backup
    url: stratum+ssl://[::1]:4444
    user: acme
    workerNameTemplate: "{user}_{worker}"
    password: { public: x }
  - name: house
    url: stratum+tcp://10.0.0.5:3333
    user: farm
    password: { public: x }
workers:
  - name: rig-001
    pools: [acme-main, acme-backup]
    assignment: { contract: acme-2026, customer: acme, role: primary }
    expectedHashrate: 1.1e14
  - name: rig-002
    user: farm.rig2
    assignment: { role: spare }
defaultRoute: { pools: [house] }
unknownWorkers: { policy: quarantine, pools: [house] }
health: { windows: [1m, 5m, 15m] }
failover: { starvation: 10s, rejectRatio: 0.8, returnAfter: 500ms }
"#;

fn good() -> RoutingDocument {
    RoutingDocument::parse(GOOD.as_bytes()).expect("good document parses")
}

fn errors_of(doc: &RoutingDocument) -> Vec<String> {
    match doc.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn good_document_validates_and_routes() {
    let doc = good();
    assert_eq!(doc.failover.starvation.as_std(), Duration::from_secs(10));
    assert_eq!(
        doc.failover.return_after.as_std(),
        Duration::from_millis(500)
    );
    assert_eq!(
        doc.failover.backoff_max,
        FailoverPolicy::default().backoff_max
    );
    let v = ValidRouting::new(doc, &SecretStore::none()).expect("valid");
    assert_eq!(v.generation(), 42);
    assert_eq!(
        v.health_windows(),
        vec![
            Duration::from_secs(60),
            Duration::from_secs(300),
            Duration::from_secs(900)
        ]
    );
    let WorkerDecision::Route(r) = v.decide("rig-001") else {
        panic!("rig-001 is listed")
    };
    assert_eq!(r.pools, vec!["acme-main", "acme-backup"]);
    assert_eq!(r.source, RouteSource::Listed);
    assert_eq!(r.assignment.as_ref().map(|a| a.role), Some(Role::Primary));
    // rig-002 authorizes as farm.rig2 and has no pools: default route.
    let WorkerDecision::Route(r) = v.decide("farm.rig2") else {
        panic!("farm.rig2 is listed")
    };
    assert_eq!(
        (r.worker.as_str(), r.source),
        ("rig-002", RouteSource::Default)
    );
    assert_eq!(r.pools, vec!["house"]);
    let WorkerDecision::Route(r) = v.decide("stranger") else {
        panic!("quarantine routes unknown workers")
    };
    assert_eq!(r.source, RouteSource::Quarantine);
    let backup = v.pool("acme-backup").expect("pool");
    assert_eq!(backup.url.authority(), "[::1]:4444");
    assert_eq!(backup.url.scheme, PoolScheme::Ssl);
    assert_eq!(backup.upstream_worker_name("rig-001"), "acme_rig-001");
    assert_eq!(
        v.pool("acme-main")
            .expect("pool")
            .upstream_worker_name("rig-001"),
        "acme.rig-001"
    );
}

#[test]
fn json_round_trip_is_the_same_document() {
    let doc = good();
    let json = serde_json::to_vec(&doc).expect("serializes");
    let back = RoutingDocument::parse(&json).expect("JSON parses");
    assert_eq!(back, doc);
    let yaml = serde_yaml::to_string(&doc).expect("serializes");
    assert_eq!(RoutingDocument::parse(yaml.as_bytes()).expect("yaml"), doc);
}

#[test]
fn unknown_pool_names_its_path() {
    let mut doc = good();
    doc.workers[0].pools = Some(vec!["acme-main".into(), "acme-bakup".into()]);
    assert_eq!(
        errors_of(&doc),
        vec![r#"workers[0].pools[1]: unknown pool "acme-bakup""#]
    );
}

#[test]
fn duplicate_worker_by_name_and_by_login() {
    let mut doc = good();
    let mut dup = doc.workers[0].clone();
    dup.pools = None;
    doc.workers.push(dup);
    let mut same_login = doc.workers[0].clone();
    same_login.name = "rig-009".into();
    same_login.user = Some("rig-001".into());
    doc.workers.push(same_login);
    assert_eq!(
        errors_of(&doc),
        vec![
            r#"workers[2].name: duplicate worker "rig-001" (first listed at workers[0])"#,
            r#"workers[3].user: duplicate worker "rig-001" (first listed at workers[0])"#,
        ]
    );
}

#[test]
fn a_name_equal_to_another_workers_login_is_a_duplicate() {
    let mut doc = good();
    // rig-002 logs in as farm.rig2; a worker *named* farm.rig2 would take its miners.
    doc.workers.push(WorkerRoute {
        name: "farm.rig2".into(),
        user: None,
        pools: None,
        assignment: None,
        expected_hashrate: None,
    });
    assert_eq!(
        errors_of(&doc),
        vec![r#"workers[2].name: duplicate worker "farm.rig2" (first listed at workers[1])"#]
    );
}

#[test]
fn malformed_urls_are_rejected_with_reason() {
    for (url, reason) in [
        ("http://pool:3333", "scheme must be"),
        ("stratum+tcp://pool", "missing :port"),
        ("stratum+tcp://pool:99999", "invalid port"),
        ("stratum+tcp://:3333", "missing host"),
        ("stratum+tcp://pool:3333/path", "only host:port"),
        ("stratum+tcp://po ol:3333", "invalid host"),
        ("stratum+tcp://pool:0", "port 0"),
    ] {
        let mut doc = good();
        doc.pools[2].url = url.into();
        let errs = errors_of(&doc);
        assert_eq!(errs.len(), 1, "{url}: {errs:?}");
        assert!(
            errs[0].starts_with(&format!("pools[2].url: malformed URL {url:?}: "))
                && errs[0].contains(reason),
            "{url}: {}",
            errs[0]
        );
    }
}

#[test]
fn missing_password_reference_and_missing_secret() {
    let mut doc = good();
    doc.pools[0].password = None;
    doc.pools[1].password = Some(PasswordRef::default());
    let errs = errors_of(&doc);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("pools[0].password: missing password reference"));
    assert!(errs[1].starts_with("pools[1].password: missing password reference"));

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("acme-pool")).expect("mkdir");
    std::fs::write(dir.path().join("acme-pool/password"), "s3cret\n").expect("write");
    let mut doc = good();
    doc.pools[0].password = Some(PasswordRef::secret("acme-pool", "password"));
    doc.pools[1].password = Some(PasswordRef::secret("acme-pool", "nope"));
    let err =
        ValidRouting::new(doc.clone(), &SecretStore::new(dir.path())).expect_err("missing key");
    assert_eq!(err.errors.len(), 1);
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "routing document rejected: pools[1].password: missing secret: secret acme-pool/nope:"
        ),
        "{msg}"
    );
    doc.pools[1].password = Some(PasswordRef::secret("acme-pool", "password"));
    let v = ValidRouting::new(doc.clone(), &SecretStore::new(dir.path())).expect("resolves");
    assert_eq!(
        v.pool("acme-main").expect("pool").password.expose(),
        "s3cret"
    );
    assert!(
        !format!("{v:?}").contains("s3cret"),
        "Debug must not leak passwords"
    );
    // Without a secrets directory the same reference is a missing secret, not a panic.
    let err = ValidRouting::new(doc, &SecretStore::none()).expect_err("no dir");
    assert!(err.to_string().contains("no secrets directory"), "{err}");
}

#[test]
fn secret_ref_cannot_escape_the_directory() {
    let mut doc = good();
    doc.pools[0].password = Some(PasswordRef::secret("..", "passwd"));
    doc.pools[1].password = Some(PasswordRef::secret("ok", "../../etc/shadow"));
    let errs = errors_of(&doc);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("pools[0].password.secretRef.name:"));
    assert!(errs[1].starts_with("pools[1].password.secretRef.key:"));
}

#[test]
fn tls_settings_are_checked_and_the_ca_is_read_at_load() {
    // pools[1] is stratum+ssl; pools[0] is plain TCP.
    let mut doc = good();
    doc.pools[0].tls = Some(PoolTlsSpec::default());
    doc.pools[1].tls = Some(PoolTlsSpec {
        ca_secret_ref: Some(SecretKeyRef {
            name: "..".into(),
            key: "ca.crt".into(),
        }),
        ca_file: Some("relative.pem".into()),
        server_name: Some("not a name".into()),
    });
    let errs = errors_of(&doc);
    assert_eq!(errs.len(), 5, "{errs:?}");
    assert!(
        errs[0].starts_with("pools[0].tls: only for stratum+ssl:// pools"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("pools[1].tls: give caSecretRef or caFile, not both"),
        "{errs:?}"
    );
    assert!(
        errs[2].starts_with("pools[1].tls.caSecretRef.name:"),
        "{errs:?}"
    );
    assert!(errs[3].starts_with("pools[1].tls.caFile:"), "{errs:?}");
    assert!(errs[4].starts_with("pools[1].tls.serverName:"), "{errs:?}");

    // An ssl pool without a tls section verifies against the system store and its host.
    let v = ValidRouting::new(good(), &SecretStore::none()).expect("valid");
    let tls = v
        .pool("acme-backup")
        .expect("pool")
        .tls
        .clone()
        .expect("tls");
    assert_eq!(tls.server_name, "::1");
    assert!(tls.ca.is_none());
    assert!(v.pool("acme-main").expect("pool").tls.is_none());

    // A CA from a mounted Secret: read, parsed, counted in the secrets digest.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("pool-ca")).expect("mkdir");
    let ca_path = dir.path().join("pool-ca/ca.crt");
    let a =
        rcgen::generate_simple_self_signed(vec!["pool.acme.example".to_string()]).expect("rcgen");
    std::fs::write(&ca_path, a.cert.pem()).expect("write");
    let mut doc = good();
    doc.pools[1].tls = Some(PoolTlsSpec {
        ca_secret_ref: Some(SecretKeyRef {
            name: "pool-ca".into(),
            key: "ca.crt".into(),
        }),
        server_name: Some("pool.acme.example".into()),
        ..PoolTlsSpec::default()
    });
    let store = SecretStore::new(dir.path());
    let v = ValidRouting::new(doc.clone(), &store).expect("valid");
    let tls = v
        .pool("acme-backup")
        .expect("pool")
        .tls
        .clone()
        .expect("tls");
    assert_eq!(tls.server_name, "pool.acme.example");
    assert_eq!(tls.ca.as_ref().map(|c| c.len()), Some(1));
    let b =
        rcgen::generate_simple_self_signed(vec!["pool.acme.example".to_string()]).expect("rcgen");
    std::fs::write(&ca_path, b.cert.pem()).expect("write");
    let rotated = ValidRouting::new(doc.clone(), &store).expect("valid");
    assert_ne!(
        v.digest(),
        rotated.digest(),
        "a rotated CA is a changed secret"
    );

    // A CA that is not one rejects the document, naming the pool and the Secret.
    std::fs::write(&ca_path, "not a certificate\n").expect("write");
    let err = ValidRouting::new(doc.clone(), &store).expect_err("bad CA");
    let msg = err.to_string();
    assert!(
        msg.contains("pools[1].tls: missing secret: secret pool-ca/ca.crt: no certificate"),
        "{msg}"
    );
    std::fs::remove_file(&ca_path).expect("rm");
    let err = ValidRouting::new(doc, &store).expect_err("missing CA");
    assert!(err.to_string().contains("pools[1].tls"), "{err}");
}

#[test]
fn password_rotation_changes_the_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("s")).expect("mkdir");
    std::fs::write(dir.path().join("s/p"), "one").expect("write");
    let mut doc = good();
    doc.pools[0].password = Some(PasswordRef::secret("s", "p"));
    let store = SecretStore::new(dir.path());
    let a = ValidRouting::new(doc.clone(), &store).expect("valid");
    let b = ValidRouting::new(doc.clone(), &store).expect("valid");
    assert_eq!(a.digest(), b.digest());
    std::fs::write(dir.path().join("s/p"), "two").expect("write");
    let c = ValidRouting::new(doc, &store).expect("valid");
    assert_ne!(a.digest(), c.digest());
}

#[test]
fn empty_pool_lists() {
    let mut doc = good();
    doc.workers[0].pools = Some(vec![]);
    doc.default_route = Some(DefaultRoute { pools: vec![] });
    doc.unknown_workers = UnknownWorkerPolicy::Quarantine { pools: vec![] };
    assert_eq!(
        errors_of(&doc),
        vec![
            "defaultRoute.pools: empty pool list",
            "workers[0].pools: empty pool list (omit `pools` to use defaultRoute)",
            "unknownWorkers.pools: empty pool list",
        ]
    );
    let mut doc = good();
    doc.default_route = None;
    doc.unknown_workers = UnknownWorkerPolicy::DefaultRoute;
    assert_eq!(
        errors_of(&doc),
        vec![
            "workers[1].pools: no pools and no defaultRoute to fall back on",
            "unknownWorkers.policy: defaultRoute policy but no defaultRoute is defined",
        ]
    );
}

#[test]
fn bad_health_windows_and_failover() {
    let mut doc = good();
    doc.health.windows = vec![
        DurationSpec::from_secs(300),
        DurationSpec::from_secs(60),
        DurationSpec::from_millis(10),
        DurationSpec::from_secs(2 * 86400),
    ];
    doc.failover.backoff_min = DurationSpec::from_secs(60);
    doc.failover.backoff_max = DurationSpec::from_secs(1);
    doc.failover.reject_ratio = 1.5;
    doc.failover.starvation = DurationSpec::from_secs(0);
    assert_eq!(
        errors_of(&doc),
        vec![
            "health.windows[1]: 1m does not follow the previous window (windows must increase)",
            "health.windows[2]: 10ms is outside 1s..24h",
            "health.windows[3]: 48h is outside 1s..24h",
            "failover.starvation: must be greater than 0",
            "failover.backoffMin: 1m is above backoffMax 1s",
            "failover.rejectRatio: 1.5 is not in (0, 1]",
        ]
    );
    let mut doc = good();
    doc.health.windows.clear();
    assert_eq!(errors_of(&doc), vec!["health.windows: no windows"]);
}

#[test]
fn parse_errors_name_the_field() {
    let e = RoutingDocument::parse(
        GOOD.replace("expectedHashrate: 1.1e14", "expectedHashrate: lots")
            .as_bytes(),
    )
    .expect_err("bad type");
    let msg = e.to_string();
    assert!(msg.contains("workers[0].expectedHashrate"), "{msg}");
    let e = RoutingDocument::parse(
        GOOD.replace("returnAfter: 500ms", "returnAfter: 5 parsecs")
            .as_bytes(),
    )
    .expect_err("bad duration");
    // The one duration grammar's message (the custom resources say the same).
    assert!(e.to_string().contains("failover.returnAfter"), "{e}");
    assert!(e.to_string().contains("unknown unit"), "{e}");
    let e = RoutingDocument::parse(
        GOOD.replace("    expectedHashrate:", "    expectedHashrte:")
            .as_bytes(),
    )
    .expect_err("typo");
    assert!(e.to_string().contains("expectedHashrte"), "{e}");
    let e = RoutingDocument::parse(b"").expect_err("empty");
    assert_eq!(
        e.to_string(),
        "cannot parse routing document: empty document"
    );
    let e = RoutingDocument::parse(&[0xff, 0xfe]).expect_err("binary");
    assert!(e.to_string().contains("not UTF-8"));
    let e = RoutingDocument::parse(b"generation: -1").expect_err("negative");
    assert!(
        e.to_string().starts_with("cannot parse routing document"),
        "{e}"
    );
}

#[test]
fn wrong_api_version_and_bad_names() {
    let mut doc = good();
    doc.api_version = "v0".into();
    doc.pools[0].name = "Acme Main".into();
    doc.workers[0].pools = Some(vec!["acme-backup".into()]);
    doc.workers[1].name = "rig 2".into();
    doc.workers[0].expected_hashrate = Some(f64::NAN);
    let errs = errors_of(&doc);
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs[0].starts_with("apiVersion: unsupported \"v0\""));
    assert!(errs[1].starts_with("pools[0].name: \"Acme Main\" is not a valid name"));
    assert!(errs[2].starts_with("workers[0].expectedHashrate: NaN H/s"));
    assert!(errs[3].starts_with("workers[1].name: \"rig 2\" contains whitespace"));
}

#[test]
fn templates() {
    let t = WorkerNameTemplate::parse("{user}.{worker}").expect("ok");
    assert_eq!(t.render("acme", "rig-1"), "acme.rig-1");
    assert_eq!(
        WorkerNameTemplate::parse("{worker}")
            .expect("ok")
            .render("u", "w"),
        "w"
    );
    assert_eq!(
        WorkerNameTemplate::parse("fixed")
            .expect("ok")
            .render("u", "w"),
        "fixed"
    );
    for bad in ["", "{user", "{nope}", "a}b", "{user} x", "{}"] {
        assert!(WorkerNameTemplate::parse(bad).is_err(), "{bad:?}");
    }
}

/// Routing documents take the one duration grammar of the project (the custom resources' and
/// the command line's): units ms, s, m, h, combined, or `0`.
#[test]
fn durations() {
    for (text, ms) in [
        ("250ms", 250),
        ("30s", 30_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("1m30s", 90_000),
        ("0", 0),
    ] {
        assert_eq!(
            text.parse::<DurationSpec>().expect(text).as_std(),
            Duration::from_millis(ms),
            "{text}"
        );
    }
    for bad in [
        "",
        "s",
        "5 days",
        "-1s",
        "1e400s",
        "99999999999999999999h",
        "2",
        "1.5s",
    ] {
        assert!(bad.parse::<DurationSpec>().is_err(), "{bad:?}");
    }
    assert_eq!(DurationSpec::from_millis(1500).to_string(), "1s500ms");
    assert_eq!(DurationSpec::from_secs(120).to_string(), "2m");
}

/// A duration outside the grammar (a bare number, a fraction) refuses the document with the
/// field's path and an example of the grammar, instead of guessing a unit.
#[test]
fn a_duration_without_a_unit_refuses_the_document_with_its_path() {
    let doc = |failover: &str| {
        format!(
            "apiVersion: {ROUTING_API_VERSION}\ngeneration: 1\npools:\n  - name: p\n    url: stratum+tcp://pool.example:3333\n    user: u\n    password: {{ public: x }}\ndefaultRoute: {{ pools: [p] }}\nfailover: {{ {failover} }}\n"
        )
    };
    assert!(
        ValidRouting::from_bytes(doc("starvation: 90s").as_bytes(), &SecretStore::none()).is_ok()
    );
    for bad in ["starvation: 90", "starvation: \"1.5s\""] {
        let err = ValidRouting::from_bytes(doc(bad).as_bytes(), &SecretStore::none())
            .expect_err(bad)
            .to_string();
        assert!(err.contains("starvation"), "{bad}: {err}");
        assert!(
            err.contains("90s"),
            "{bad}: the error shows the grammar: {err}"
        );
    }
}

#[test]
fn quick_start_document_is_valid() {
    let pools = vec![
        PoolSpec {
            name: "primary".into(),
            url: "stratum+tcp://127.0.0.1:3333".into(),
            user: "me".into(),
            worker_name_template: DEFAULT_WORKER_NAME_TEMPLATE.into(),
            password: Some(PasswordRef::public("x")),
            tls: None,
        },
        PoolSpec {
            name: "backup".into(),
            url: "stratum+tcp://127.0.0.1:3334".into(),
            user: "me".into(),
            worker_name_template: "{worker}".into(),
            password: Some(PasswordRef::public("x")),
            tls: None,
        },
    ];
    let v = ValidRouting::new(
        RoutingDocument::failover_list(1, pools),
        &SecretStore::none(),
    )
    .expect("quick start validates");
    let WorkerDecision::Route(r) = v.decide("anyone.rig7") else {
        panic!("quick start routes everyone")
    };
    assert_eq!(r.pools, vec!["primary", "backup"]);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Arbitrary bytes never panic the parser or validator.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ValidRouting::from_bytes(&bytes, &SecretStore::none());
        }

        // Mutating the good document's text never panics and any accepted result is valid.
        #[test]
        fn mutated_documents_never_panic(pos in 0usize..GOOD.len(), c in any::<char>()) {
            let mut s = GOOD.to_string();
            if s.is_char_boundary(pos) {
                s.insert(pos, c);
            }
            if let Ok(v) = ValidRouting::from_bytes(s.as_bytes(), &SecretStore::none()) {
                prop_assert!(v.document().validate().is_ok());
            }
        }

        #[test]
        fn urls_never_panic(s in ".{0,64}") {
            let _ = PoolUrl::parse(&s);
            let _ = WorkerNameTemplate::parse(&s);
            let _ = s.parse::<DurationSpec>();
        }
    }
}

/// The example in the module documentation is a valid document (the doc cannot rot).
#[test]
fn module_doc_example_is_valid() {
    let source = include_str!("../routing.rs");
    let yaml: String = source
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| !l.starts_with("```yaml"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(yaml.contains("apiVersion"), "example found: {yaml}");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("acme-pool")).expect("mkdir");
    std::fs::write(dir.path().join("acme-pool/password"), "pw").expect("write");
    let v = ValidRouting::from_bytes(yaml.as_bytes(), &SecretStore::new(dir.path()))
        .expect("the documented example is valid");
    assert_eq!(v.generation(), 42);
    let WorkerDecision::Route(r) = v.decide("rig-002") else {
        panic!("rig-002 routes")
    };
    assert_eq!(
        (r.pools, r.source),
        (vec!["house".to_string()], RouteSource::Default)
    );
    assert_eq!(v.decide("nobody"), WorkerDecision::Reject);
}
