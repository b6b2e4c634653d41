//! `stratum+ssl://` pools: the hub speaks TLS upstream, verifies the pool's certificate, and
//! refuses a pool whose certificate it cannot verify. Real TLS (rustls on both ends) over
//! 127.0.0.1, certificates made by rcgen for each test, shares checked with sha256d at the pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hashsched_hub::config::HubConfig;
use hashsched_hub::routing::{PasswordRef, PoolSpec, PoolTlsSpec, RoutingDocument};
use hashsched_hub::sim::miner::SimMiner;
use hashsched_hub::sim::pool::SimPool;
use hashsched_hub::sim::wait_until;
use hashsched_tests::{
    DEADLINE, POOL_USER, facts_of, hub_config, init_tracing, pool_counts_for, start_hub,
    test_miner, test_pool,
};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const D: f64 = 1e-7;

fn ring_provider() -> Arc<tokio_rustls::rustls::crypto::CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// A self-signed certificate for `names`, as the pool's server config and as a PEM file the
/// hub can be told to trust.
struct PoolCert {
    server: Arc<ServerConfig>,
    pem_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn pool_cert(names: &[&str]) -> PoolCert {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(names).expect("rcgen");
    serve_and_trust(&ck.cert, &ck.signing_key, &ck.cert)
}

/// A self-signed certificate marked as a CA, as `openssl req -x509` makes them (the usual way a
/// pool operator makes one): WebPKI refuses it as a server's own certificate; the hub pins it.
fn openssl_style_pool_cert(names: &[&str]) -> PoolCert {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    serve_and_trust(&cert, &key, &cert)
}

/// A private CA and a pool certificate it signed; the hub is given the CA only.
fn private_ca_pool_cert(names: &[&str]) -> PoolCert {
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca =
        rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("key"))
            .expect("ca");
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(names)
        .expect("params")
        .signed_by(&key, &ca)
        .expect("signed");
    serve_and_trust(&leaf, &key, ca.as_ref())
}

/// The pool serves `cert` (key `key`); the hub is told to trust `trust`.
fn serve_and_trust(
    cert: &rcgen::Certificate,
    key: &rcgen::KeyPair,
    trust: &rcgen::Certificate,
) -> PoolCert {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server = ServerConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("server config");
    let dir = tempfile::tempdir().expect("tempdir");
    let pem_file = dir.path().join("pool-ca.pem");
    std::fs::write(&pem_file, trust.pem()).expect("write pem");
    PoolCert {
        server: Arc::new(server),
        pem_file,
        _dir: dir,
    }
}

/// A hub with one TLS pool, trusting `ca` and checking `server_name` (if given).
fn tls_hub_config(pool: &SimPool, ca: &Path, server_name: Option<&str>) -> HubConfig {
    let mut cfg = hub_config(&[pool.url()], D);
    cfg.routing = Some(RoutingDocument::failover_list(
        1,
        vec![PoolSpec {
            name: "tls-pool".into(),
            url: pool.url(),
            user: POOL_USER.into(),
            worker_name_template: "{user}.{worker}".into(),
            password: Some(PasswordRef::public("x")),
            tls: Some(PoolTlsSpec {
                ca_file: Some(ca.to_path_buf()),
                server_name: server_name.map(str::to_owned),
                ..PoolTlsSpec::default()
            }),
        }],
    ));
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miners_mine_through_the_hub_on_a_tls_pool() {
    init_tracing();
    // The URL holds 127.0.0.1: the certificate's IP SAN is what gets checked.
    let cert = pool_cert(&["127.0.0.1", "localhost"]);
    let pool = SimPool::start_tls(test_pool(D), cert.server.clone())
        .await
        .unwrap();
    assert!(pool.url().starts_with("stratum+ssl://"), "{}", pool.url());
    let hub = start_hub(tls_hub_config(&pool, &cert.pem_file, None)).await;
    let miners: Vec<SimMiner> = (0..3)
        .map(|i| {
            SimMiner::spawn(
                hub.stratum_addr(),
                test_miner(&format!("tls.rig{i}"), D, 20.0),
            )
        })
        .collect();
    for (i, m) in miners.iter().enumerate() {
        m.wait_for(DEADLINE, |s| s.accepted >= 10)
            .await
            .unwrap_or_else(|e| {
                panic!("tls.rig{i} gets shares accepted through the TLS pool: {e:?}")
            });
    }
    for m in &miners {
        m.stall();
    }
    for (i, m) in miners.iter().enumerate() {
        let worker = format!("tls.rig{i}");
        let s = m.wait_for(DEADLINE, |s| s.in_flight == 0).await.unwrap();
        // Every share the miner saw accepted was checked (sha256d) and credited by the pool.
        let at_pool = pool_counts_for(&pool, &worker);
        assert_eq!(at_pool.accepted, s.accepted, "{worker}");
        assert_eq!(at_pool.rejected.values().sum::<u64>(), 0, "{worker}");
        let f = facts_of(&hub, &worker).expect("facts");
        assert_eq!(f.pool.as_deref(), Some("tls-pool"));
    }
    let p = hub
        .pool_facts()
        .into_iter()
        .find(|p| p.pool == "tls-pool")
        .expect("pool facts");
    assert!(p.up, "{p:?}");
    assert_eq!(pool.stats().tls_handshake_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_whose_certificate_is_not_trusted_is_never_used() {
    init_tracing();
    let real = pool_cert(&["127.0.0.1"]);
    let other = pool_cert(&["127.0.0.1"]);
    let pool = SimPool::start_tls(test_pool(D), real.server.clone())
        .await
        .unwrap();
    // The hub trusts a different certificate: every handshake must fail, nothing is mined.
    let hub = start_hub(tls_hub_config(&pool, &other.pem_file, None)).await;
    let miner = SimMiner::spawn(hub.stratum_addr(), test_miner("tls.untrusted", D, 20.0));
    let failures = wait_until(DEADLINE, || {
        let n = pool.stats().tls_handshake_failures;
        (n >= 2).then_some(n)
    })
    .await;
    assert!(
        failures.is_some(),
        "the hub retried and was refused each time"
    );
    // One more refused retry after the facts show the failures: by then the hub has had every
    // chance to use the pool (waiting for that replaces a fixed sleep).
    let failures = failures.unwrap();
    let p = wait_until(DEADLINE, || {
        hub.pool_facts()
            .into_iter()
            .find(|p| p.pool == "tls-pool")
            .filter(|p| p.disconnects >= 2 && p.last_failure.is_some())
            .filter(|_| pool.stats().tls_handshake_failures > failures)
    })
    .await
    .unwrap_or_else(|| panic!("pool facts: {:?}", hub.pool_facts()));
    assert!(!p.up, "{p:?}");
    assert!(p.disconnects >= 2, "{p:?}");
    // The reason is in the facts (and so in `hashsched status`), in words one can act on.
    let why = p.last_failure.as_deref().unwrap_or_default();
    assert!(
        why.contains("TLS handshake") && why.contains("invalid peer certificate"),
        "{why:?}"
    );
    assert_eq!(pool.stats().accepted_total(), 0);
    assert!(pool.stats().workers.is_empty(), "no worker ever authorized");
    let s = miner.stats();
    assert_eq!(s.accepted, 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_checks_a_certificate_issued_for_another_name() {
    init_tracing();
    // The certificate names pool.example only; the URL dials 127.0.0.1.
    let cert = pool_cert(&["pool.example"]);
    let pool = SimPool::start_tls(test_pool(D), cert.server.clone())
        .await
        .unwrap();

    // Without serverName the name check fails (the certificate does not name 127.0.0.1).
    let hub = start_hub(tls_hub_config(&pool, &cert.pem_file, None)).await;
    let refused = wait_until(DEADLINE, || {
        (pool.stats().tls_handshake_failures >= 1).then_some(())
    })
    .await;
    assert!(refused.is_some(), "name mismatch refused");
    assert!(pool.stats().workers.is_empty());
    hub.shutdown().await;

    // With serverName: pool.example the same certificate verifies and miners mine.
    let hub = start_hub(tls_hub_config(&pool, &cert.pem_file, Some("pool.example"))).await;
    let miner = SimMiner::spawn(hub.stratum_addr(), test_miner("tls.named", D, 20.0));
    miner
        .wait_for(DEADLINE, |s| s.accepted >= 5)
        .await
        .expect("shares accepted once serverName matches the certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_ca_flagged_pins_and_private_ca_chains_are_accepted() {
    init_tracing();
    for (what, cert) in [
        (
            "openssl-style self-signed (pinned)",
            openssl_style_pool_cert(&["127.0.0.1"]),
        ),
        (
            "signed by a private CA",
            private_ca_pool_cert(&["127.0.0.1"]),
        ),
    ] {
        let pool = SimPool::start_tls(test_pool(D), cert.server.clone())
            .await
            .unwrap();
        let hub = start_hub(tls_hub_config(&pool, &cert.pem_file, None)).await;
        let miner = SimMiner::spawn(hub.stratum_addr(), test_miner("tls.pinned", D, 20.0));
        miner
            .wait_for(DEADLINE, |s| s.accepted >= 5)
            .await
            .unwrap_or_else(|e| panic!("{what}: shares accepted: {e:?}"));
        assert_eq!(pool.stats().tls_handshake_failures, 0, "{what}");
        drop(miner);
        hub.shutdown().await;
    }
    // A pinned certificate must still carry the name the hub dials (or tls.serverName).
    let cert = openssl_style_pool_cert(&["pool.example"]);
    let pool = SimPool::start_tls(test_pool(D), cert.server.clone())
        .await
        .unwrap();
    let _hub = start_hub(tls_hub_config(&pool, &cert.pem_file, None)).await;
    let refused = wait_until(DEADLINE, || {
        (pool.stats().tls_handshake_failures >= 1).then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "a pinned certificate for another name is refused"
    );
    assert!(pool.stats().workers.is_empty());
}
