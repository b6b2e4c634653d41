//! Pool passwords and CA certificates read from mounted Secrets or files; a [`Password`] never
//! prints itself.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{PasswordRef, PoolScheme, PoolTlsSpec, PoolUrl};

/// Where pool passwords are read from: the directory the operator mounts Secrets under.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    /// `<dir>/<secret name>/<key>`; `None` when the hub runs without mounted Secrets.
    pub dir: Option<PathBuf>,
}

impl SecretStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }
    /// No Secret directory: only `public` passwords and absolute `file` references resolve.
    pub fn none() -> Self {
        Self { dir: None }
    }

    /// Resolves a password reference; the error explains what is missing.
    pub fn resolve(&self, r: &PasswordRef) -> Result<Password, String> {
        if let Some(v) = &r.public {
            return Ok(Password(v.clone()));
        }
        if let Some(s) = &r.secret_ref {
            let dir = self.dir.as_ref().ok_or_else(|| {
                format!(
                    "secret {}/{}: this hub has no secrets directory configured",
                    s.name, s.key
                )
            })?;
            let path = dir.join(&s.name).join(&s.key);
            return read_password_file(&path)
                .map_err(|e| format!("secret {}/{}: {e}", s.name, s.key));
        }
        if let Some(f) = &r.file {
            return read_password_file(f);
        }
        Err("no password source".into())
    }

    /// Resolves a pool's TLS settings (`None` for a plain-TCP pool); reads and checks the CA.
    pub fn resolve_tls(
        &self,
        url: &PoolUrl,
        spec: Option<&PoolTlsSpec>,
    ) -> Result<Option<crate::tls::PoolTls>, String> {
        if url.scheme != PoolScheme::Ssl {
            return Ok(None);
        }
        let spec = spec.cloned().unwrap_or_default();
        let source = match (&spec.ca_secret_ref, &spec.ca_file) {
            (Some(s), _) => {
                let dir = self.dir.as_ref().ok_or_else(|| {
                    format!(
                        "secret {}/{}: this hub has no secrets directory configured",
                        s.name, s.key
                    )
                })?;
                Some((
                    dir.join(&s.name).join(&s.key),
                    format!("secret {}/{}", s.name, s.key),
                ))
            }
            (None, Some(f)) => Some((f.clone(), f.display().to_string())),
            (None, None) => None,
        };
        let ca = match source {
            Some((path, what)) => {
                let meta = std::fs::metadata(&path).map_err(|e| format!("{what}: {e}"))?;
                if meta.len() > crate::tls::MAX_CA_BYTES as u64 {
                    return Err(format!(
                        "{what}: larger than {} bytes",
                        crate::tls::MAX_CA_BYTES
                    ));
                }
                let pem = std::fs::read(&path).map_err(|e| format!("{what}: {e}"))?;
                Some(crate::tls::parse_ca(&pem, &what).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        Ok(Some(crate::tls::PoolTls {
            server_name: spec.server_name.unwrap_or_else(|| url.host.clone()),
            ca,
        }))
    }
}

fn read_password_file(path: &Path) -> Result<Password, String> {
    const MAX: u64 = 4096;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX {
        return Err(format!("{}: larger than {MAX} bytes", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    Ok(Password(text.trim_end_matches(['\n', '\r']).to_string()))
}

/// A pool password; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}
