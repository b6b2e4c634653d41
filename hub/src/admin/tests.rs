//! Admin API over real TCP: auth, validation errors, generation ordering, probes.

use std::sync::Arc;

use super::client::{AdminResponse, request};
use super::*;
use crate::routing::SecretStore;
use crate::routing::control::{RecordingSink, test_doc};

struct Api {
    addr: SocketAddr,
    sink: Arc<RecordingSink>,
    _dir: tempfile::TempDir,
    token_file: PathBuf,
    _task: tokio::task::JoinHandle<()>,
}

async fn start() -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").expect("write token");
    let sink = Arc::new(RecordingSink::default());
    let control = Arc::new(RoutingControl::new(SecretStore::none(), sink.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = AdminState::new(control, TokenSource::File(token_file.clone()));
    let task = tokio::spawn(async move {
        let _ = serve(listener, state, std::future::pending()).await;
    });
    Api {
        addr,
        sink,
        _dir: dir,
        token_file,
        _task: task,
    }
}

async fn put(api: &Api, token: Option<&str>, body: &str) -> AdminResponse {
    request(api.addr, "PUT", "/routing", token, body.as_bytes())
        .await
        .expect("request")
}

const TOKEN: Option<&str> = Some("s3cret-token");

#[tokio::test]
async fn unauthenticated_requests_are_refused() {
    let api = start().await;
    for token in [None, Some("wrong"), Some("s3cret-token-and-more"), Some("")] {
        let r = put(&api, token, &test_doc(1, 3333)).await;
        assert_eq!(r.status, 401, "{token:?}: {}", r.body);
        let r = request(api.addr, "GET", "/routing", token, b"")
            .await
            .expect("get");
        assert_eq!(r.status, 401);
    }
    assert!(
        api.sink.generations().is_empty(),
        "nothing applied without auth"
    );
    // Probes need no token.
    let r = request(api.addr, "GET", "/healthz", None, b"")
        .await
        .expect("healthz");
    assert_eq!(r.status, 200);
    let r = request(api.addr, "GET", "/readyz", None, b"")
        .await
        .expect("readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("waiting for the first routing document"));
}

#[tokio::test]
async fn push_validate_apply_and_report_generation() {
    let api = start().await;
    let r = put(&api, TOKEN, &test_doc(7, 3333)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json().expect("json")["generation"], 7);
    assert_eq!(api.sink.generations(), vec![7]);
    let r = request(api.addr, "GET", "/readyz", None, b"")
        .await
        .expect("readyz");
    assert_eq!(r.status, 200);

    // Invalid: unknown pool, with its path; hub keeps generation 7.
    let bad = test_doc(8, 3333).replace("pools: [main]", "pools: [main, acme-backup]");
    let r = put(&api, TOKEN, &bad).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let j = r.json().expect("json");
    assert_eq!(
        j["errors"][0],
        r#"workers[0].pools[1]: unknown pool "acme-backup""#
    );
    assert_eq!(j["appliedGeneration"], 7);

    // Malformed URL and missing secret (no secrets dir) in one document: both reported.
    let bad = test_doc(8, 3333)
        .replace("stratum+tcp://127.0.0.1:3333", "tcp://127.0.0.1")
        .replace(
            "password: { public: x }",
            "password: { secretRef: { name: acme, key: pw } }",
        );
    let r = put(&api, TOKEN, &bad).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let j = r.json().expect("json");
    assert!(
        j["errors"][0]
            .as_str()
            .is_some_and(|e| e.starts_with(r#"pools[0].url: malformed URL "tcp://127.0.0.1""#)),
        "{j}"
    );

    // Duplicate worker.
    let bad = format!("{}  - name: rig-1\n", test_doc(8, 3333));
    let r = put(&api, TOKEN, &bad).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("duplicate worker"), "{}", r.body);

    // Not YAML at all.
    let r = put(&api, TOKEN, "{{{{").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("cannot parse routing document"),
        "{}",
        r.body
    );

    // Going back in time is refused with the reason.
    let r = put(&api, TOKEN, &test_doc(6, 3333)).await;
    assert_eq!(r.status, 409);
    assert!(
        r.body.contains("lower than the applied generation 7"),
        "{}",
        r.body
    );

    // JSON body works too.
    let doc = crate::routing::RoutingDocument::parse(test_doc(9, 4444).as_bytes()).expect("doc");
    let json = serde_json::to_string(&doc).expect("json");
    let r = request(api.addr, "POST", "/routing", TOKEN, json.as_bytes())
        .await
        .expect("post");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(api.sink.generations(), vec![7, 9]);

    let r = request(api.addr, "GET", "/routing", TOKEN, b"")
        .await
        .expect("get");
    assert_eq!(r.status, 200);
    let j = r.json().expect("json");
    assert_eq!(j["generation"], 9);
    assert_eq!(
        j["document"]["pools"][0]["url"],
        "stratum+tcp://127.0.0.1:4444"
    );
}

#[tokio::test]
async fn token_rotation_and_missing_token_file() {
    let api = start().await;
    std::fs::write(&api.token_file, "rotated").expect("rotate");
    assert_eq!(put(&api, TOKEN, &test_doc(1, 3333)).await.status, 401);
    assert_eq!(
        put(&api, Some("rotated"), &test_doc(1, 3333)).await.status,
        200
    );
    std::fs::remove_file(&api.token_file).expect("rm");
    let r = put(&api, Some("rotated"), &test_doc(2, 3333)).await;
    assert_eq!(r.status, 401, "fail closed without a token file");
    std::fs::write(&api.token_file, "\n").expect("empty");
    assert_eq!(put(&api, Some(""), &test_doc(2, 3333)).await.status, 401);
    assert_eq!(api.sink.generations(), vec![1]);
}

#[test]
fn bearer_parsing() {
    let src = TokenSource::Value("abc".into());
    let hv = |s: &'static str| HeaderValue::from_static(s);
    assert_eq!(check_bearer(&src, Some(&hv("Bearer abc"))), Ok(()));
    assert_eq!(check_bearer(&src, Some(&hv("bearer  abc "))), Ok(()));
    assert_eq!(
        check_bearer(&src, Some(&hv("Basic abc"))),
        Err(AuthError::Missing)
    );
    assert_eq!(
        check_bearer(&src, Some(&hv("Bearer ab"))),
        Err(AuthError::Invalid)
    );
    assert_eq!(check_bearer(&src, None), Err(AuthError::Missing));
    assert!(matches!(
        check_bearer(&TokenSource::Value(String::new()), Some(&hv("Bearer "))),
        Err(AuthError::Unconfigured(_))
    ));
}
