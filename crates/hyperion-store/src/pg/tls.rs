//! TLS for PostgreSQL connections, as libpq's `sslmode` has it (rustls, no system OpenSSL):
//!
//! | `sslmode` | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always | not checked, unless a root certificate is there (then as `verify-ca`) |
//! | `verify-ca` | always | signed by the root certificate |
//! | `verify-full` | always | signed by it, and for the host connected to |
//!
//! The root certificate is `sslrootcert` (a PEM file, or `system` for the machine's
//! authorities), else `PGSSLROOTCERT`, else `~/.postgresql/root.crt`. `allow` tries TLS first,
//! where libpq tries without: the driver has no plain-first mode, and encryption is the
//! safer side to err on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode \"{other}\" is not one of disable, allow, prefer, require, \
                     verify-ca, verify-full"
                ));
            }
        })
    }

    /// What the driver does before the handshake.
    pub fn driver(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        }
    }
}

/// Where the root certificate is when the URL does not say.
pub fn default_root() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PGSSLROOTCERT").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".postgresql/root.crt")).filter(|p| p.exists())
}

/// The connector for `mode`; `root` is the root certificate the URL or the environment names.
pub fn connector(mode: SslMode, root: Option<&Path>) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let checks = match (mode, root) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(format!(
                "sslmode={} needs a root certificate: sslrootcert=FILE in the URL, \
                 PGSSLROOTCERT, or ~/.postgresql/root.crt",
                if mode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            ));
        }
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => None,
        (_, Some(root)) => Some(roots(root)?),
    };
    let chain = match checks {
        Some(roots) if mode == SslMode::VerifyFull => {
            let config = builder.with_root_certificates(roots).with_no_client_auth();
            return Ok(MakeRustlsConnect::new(config));
        }
        Some(roots) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("TLS: {e}"))?,
        ),
        None => None,
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Lenient { chain, provider }))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The certificates of `path` (PEM), or the machine's authorities for `system`.
fn roots(path: &Path) -> Result<RootCertStore, String> {
    let path = if path == Path::new("system") {
        Path::new("/etc/ssl/certs/ca-certificates.crt")
    } else {
        path
    };
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("root certificate {shown}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("root certificate {shown}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("root certificate {shown}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("root certificate {shown}: no certificate in it"));
    }
    Ok(roots)
}

/// The certificate checks `require` and `verify-ca` make (`verify-full` is rustls's own):
/// with `chain`, the certificate must lead to the root certificate, whatever name it holds;
/// without, it is not checked — the connection is encrypted, the server not authenticated, as
/// libpq does. The handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
