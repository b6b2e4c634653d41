//! TLS towards `stratum+ssl://` pools.
//!
//! Many pools offer a TLS port next to the plain one, and farms that mine over the internet use
//! it so that nobody on the path can read the account or rewrite the work. The hub verifies the
//! pool's certificate like any TLS client: against the system's trust store by default, or
//! against the CA given for that pool (`tls.caFile` / `tls.caSecretRef`: a private CA, or the
//! pool's own self-signed certificate). There is no "skip verification" switch: a pool whose
//! certificate cannot be checked is a pool whose jobs cannot be trusted.
//!
//! A certificate given for the pool that the pool itself presents is **pinned**: accepted by exact
//! match, its name and the handshake signature made with its key, without CA checks. This is
//! what makes self-signed pool certificates work: `openssl req -x509` marks its certificates as
//! CAs, and WebPKI refuses a CA certificate as a server's own (`CaUsedAsEndEntity`); found with a
//! real OpenSSL-made certificate in front of a pool.
//!
//! rustls on `ring`, the provider kube's client already builds. The system roots are read once
//! per process; a per-pool CA is parsed when the routing document is loaded, so a bad PEM is a
//! rejected document, not a failing connection.

use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The pool TLS settings a routing document resolves to, defined with the routing contract.
pub use hashsched_contract::tls::{MAX_CA_BYTES, PoolTls, check_server_name, parse_ca};

/// Why a TLS connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A CA bundle or server name that is not usable (see [`hashsched_contract::tls`]).
    #[error(transparent)]
    Settings(#[from] hashsched_contract::tls::TlsError),
    #[error(
        "no system CA certificates found ({0}); install the ca-certificates package or give the pool tls.caFile / tls.caSecretRef"
    )]
    NoSystemRoots(String),
    #[error("TLS setup: {0}")]
    Config(#[from] rustls::Error),
    #[error("TLS setup: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
}

/// The system trust store, read once per process.
fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "the store is empty".into());
                return Err(why);
            }
            Ok(Arc::new(store))
        })
        .clone()
        .map_err(TlsError::NoSystemRoots)
}

/// The rustls client configuration for one pool.
pub fn client_config(tls: &PoolTls) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match &tls.ca {
        None => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        Some(ca) => {
            let mut store = RootCertStore::empty();
            for c in ca.iter() {
                store.add(c.clone())?;
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()?;
            let verifier = PinnedOrWebPki {
                pinned: ca.clone(),
                webpki,
                provider,
            };
            // Not "dangerous": every certificate is still verified, against the pin or the CA.
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// Accepts the pool's certificate if it is one of the given certificates byte for byte (a pin);
/// otherwise verifies it as WebPKI does, with the given certificates as trust anchors.
#[derive(Debug)]
struct PinnedOrWebPki {
    pinned: Arc<[CertificateDer<'static>]>,
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            // The name still has to match (or `tls.serverName` say which name it carries).
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    // The handshake signature proves the pool holds the pinned certificate's key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// TLS handshake over a connected socket; the caller bounds it with its connect timeout.
pub async fn connect(tcp: TcpStream, tls: &PoolTls) -> Result<TlsStream<TcpStream>, TlsError> {
    let config = client_config(tls)?;
    let name = ServerName::try_from(tls.server_name.clone())
        .map_err(|_| hashsched_contract::tls::TlsError::ServerName(tls.server_name.clone()))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(TlsError::Handshake)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        rcgen::generate_simple_self_signed(names).expect("rcgen")
    }

    /// The contract crate checks CA certificates with WebPKI directly; a certificate is refused
    /// exactly when `rustls::RootCertStore::add` refused it, with the same reason.
    #[test]
    fn a_refused_anchor_reads_as_rustls_says_it() {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let mut critical = rcgen::CustomExtension::from_oid_content(&[1, 2, 3, 4, 5], vec![5, 0]);
        critical.set_criticality(true);
        let mut params =
            rcgen::CertificateParams::new(vec!["pool.example".to_string()]).expect("params");
        params.custom_extensions.push(critical);
        let key = rcgen::KeyPair::generate().expect("key");
        let unknown_critical = params.self_signed(&key).expect("cert").pem();
        let plain = self_signed(&["pool.example"]).cert.pem();
        for pem in [junk.to_string(), unknown_critical, plain] {
            let der = CertificateDer::pem_slice_iter(pem.as_bytes())
                .next()
                .expect("one")
                .expect("pem");
            let rustls_says = RootCertStore::empty()
                .add(der)
                .err()
                .map(|e| format!("c: certificate 0 is not usable as a trust anchor: {e}"));
            let ours = parse_ca(pem.as_bytes(), "c").err().map(|e| e.to_string());
            assert_eq!(ours, rustls_says);
        }
    }

    #[test]
    fn a_given_ca_builds_a_config_without_the_system_store() {
        let a = self_signed(&["pool.example"]);
        let tls = PoolTls {
            server_name: "pool.example".into(),
            ca: Some(parse_ca(a.cert.pem().as_bytes(), "ca").expect("ca")),
        };
        client_config(&tls).expect("config");
    }
}
