//! Pool TLS settings as a routing document resolves them: the certificate checks of a
//! `stratum+ssl://` pool ([`PoolTls`]), the CA bundle parser ([`parse_ca`]) and the server-name
//! check ([`check_server_name`]).
//!
//! A per-pool CA is parsed when the routing document is loaded, so a bad PEM is a rejected
//! document, not a failing connection. The TLS connection itself (rustls on `ring`, the pinned or
//! WebPKI verifier, the system trust store) is the hub's (`hashsched_hub::tls`); this module
//! needs only the certificate types and WebPKI's trust-anchor parser.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

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

/// Why a pool's TLS settings (a CA bundle, a server name) are unusable.
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
        webpki::anchor_from_trusted_cert(c).map_err(|e| TlsError::BadAnchor {
            what: what.to_owned(),
            index,
            reason: anchor_reason(&e),
        })?;
    }
    Ok(certs.into())
}

/// The reason rustls gives when `RootCertStore::add` refuses a certificate (which calls the same
/// WebPKI parser): its message for a WebPKI error, so the text of a refused document is the same
/// as when the check went through rustls. Parsing a trust anchor can only fail with encoding
/// errors (rustls: `BadEncoding`) or extension errors (rustls: `Other`).
fn anchor_reason(e: &webpki::Error) -> String {
    match e {
        webpki::Error::BadDer | webpki::Error::BadDerTime | webpki::Error::TrailingData(_) => {
            "invalid peer certificate: BadEncoding".to_owned()
        }
        other => format!("invalid peer certificate: Other(OtherError({other:?}))"),
    }
}

/// Checks a name for certificate verification / SNI (a DNS name or an IP address).
pub fn check_server_name(name: &str) -> Result<(), TlsError> {
    ServerName::try_from(name.to_owned())
        .map(|_| ())
        .map_err(|_| TlsError::ServerName(name.to_owned()))
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
}
