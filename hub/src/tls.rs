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
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Largest CA bundle accepted (the Mozilla bundle is ~220 KiB).
pub const MAX_CA_BYTES: usize = 1024 * 1024;

/// How to verify one pool's certificate (resolved from the routing document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTls {
    /// Name checked against the certificate and sent as SNI (the URL's host unless
    /// `tls.serverName` says otherwise). An IP address is checked against IP SANs.
    pub server_name: String,
    /// Trust anchors instead of the system store (parsed and checked at load).
    pub ca: Option<Arc<[CertificateDer<'static>]>>,
}

/// Why a TLS connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: not a PEM certificate bundle")]
    BadPem(String),
    #[error("{0}: no certificate in the PEM data")]
    NoCertificates(String),
    #[error("{what}: certificate {index} is not usable as a trust anchor: {reason}")]
    BadAnchor {
        what: String,
        index: usize,
        reason: String,
    },
    #[error("{0}: larger than {MAX_CA_BYTES} bytes")]
    TooLarge(String),
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
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

/// Parses a PEM bundle of CA certificates; `what` names the source in errors.
pub fn parse_ca(pem: &[u8], what: &str) -> Result<Arc<[CertificateDer<'static>]>, TlsError> {
    if pem.len() > MAX_CA_BYTES {
        return Err(TlsError::TooLarge(what.to_owned()));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::BadPem(what.to_owned()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates(what.to_owned()));
    }
    // Same check the handshake would make later, made now so the document is refused instead.
    for (index, c) in certs.iter().enumerate() {
        let mut store = RootCertStore::empty();
        store.add(c.clone()).map_err(|e| TlsError::BadAnchor {
            what: what.to_owned(),
            index,
            reason: e.to_string(),
        })?;
    }
    Ok(certs.into())
}

/// Checks a name for certificate verification / SNI (a DNS name or an IP address).
pub fn check_server_name(name: &str) -> Result<(), TlsError> {
    ServerName::try_from(name.to_owned())
        .map(|_| ())
        .map_err(|_| TlsError::ServerName(name.to_owned()))
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
        .map_err(|_| TlsError::ServerName(tls.server_name.clone()))?;
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

    #[test]
    fn parses_a_ca_bundle_and_refuses_what_is_not_one() {
        let a = self_signed(&["pool.example"]);
        let b = self_signed(&["other.example"]);
        let bundle = format!("{}\n{}", a.cert.pem(), b.cert.pem());
        assert_eq!(parse_ca(bundle.as_bytes(), "ca").expect("bundle").len(), 2);

        let err = parse_ca(b"", "caFile x.pem").unwrap_err().to_string();
        assert!(err.contains("caFile x.pem: no certificate"), "{err}");
        let err = parse_ca(
            b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
            "c",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not a PEM"), "{err}");
        let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let err = parse_ca(junk.as_bytes(), "c").unwrap_err().to_string();
        assert!(err.contains("certificate 0 is not usable"), "{err}");
        let big = vec![b'a'; MAX_CA_BYTES + 1];
        assert!(matches!(parse_ca(&big, "c"), Err(TlsError::TooLarge(_))));
        // A key is not a certificate.
        let key = a.signing_key.serialize_pem();
        assert!(matches!(
            parse_ca(key.as_bytes(), "c"),
            Err(TlsError::NoCertificates(_))
        ));
    }

    #[test]
    fn server_names_are_dns_names_or_ip_addresses() {
        for ok in ["pool.example.com", "127.0.0.1", "::1", "localhost"] {
            check_server_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "pool example", "pool..example", "-"] {
            assert!(check_server_name(bad).is_err(), "{bad:?} accepted");
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
