//! TLS for the store's connections: libpq's `sslmode` and `sslrootcert`, over rustls with the
//! ring crypto provider.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::task::JoinHandle;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::PostgresError;

/// Whether and how a connection uses TLS: libpq's `sslmode`.
///
/// | mode | encrypted | certificate checked | host name checked |
/// |---|---|---|---|
/// | `disable` | no | – | – |
/// | `prefer` (default) | when the server offers it; else plain | no ¹ | no |
/// | `require` | yes | no ¹ | no |
/// | `verify-ca` | yes | yes | no |
/// | `verify-full` | yes | yes | yes |
///
/// ¹ As in libpq, a root certificate file given with `sslrootcert` makes `prefer` and `require`
/// check the certificate chain (as `verify-ca`); `prefer` then falls back to a plain connection
/// when the check fails, as libpq does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// TLS when the server offers it and the handshake succeeds, else a plain connection (libpq's
    /// default).
    #[default]
    Prefer,
    /// TLS or no connection; the server's certificate is not checked.
    Require,
    /// TLS, with the server's certificate checked against the trusted roots.
    VerifyCa,
    /// TLS, with the server's certificate checked against the trusted roots and for the host name
    /// connected to (its subjectAltName: a DNS name, or the IP address).
    VerifyFull,
}

impl SslMode {
    /// Every mode, in order of strength.
    pub const ALL: [SslMode; 5] = [
        Self::Disable,
        Self::Prefer,
        Self::Require,
        Self::VerifyCa,
        Self::VerifyFull,
    ];

    /// The mode as written in a URL (`verify-full`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = PostgresError;

    /// Parses a mode as written in a URL; anything else is a [`PostgresError::Url`] naming the
    /// accepted values.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| PostgresError::Url {
                reason: format!(
                    "sslmode {:?} is not one of {}",
                    s.chars().take(32).collect::<String>(),
                    Self::ALL.map(Self::as_str).join(", ")
                ),
            })
    }
}

/// The certificates a server's certificate is checked against: libpq's `sslrootcert`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RootCerts {
    /// None given: `verify-ca` and `verify-full` use the system's trusted roots, `prefer` and
    /// `require` check nothing.
    #[default]
    Unset,
    /// The system's trusted roots (`sslrootcert=system`, as libpq 16); only with `verify-full`.
    System,
    /// The certificates of a PEM file (`sslrootcert=/path/ca.pem`).
    File(PathBuf),
}

/// How the store's connections use TLS: an [`SslMode`] and the [`RootCerts`] to check the
/// server's certificate against. [`PostgresStore::connect`](crate::PostgresStore::connect) reads
/// both from the URL (`sslmode`, `sslrootcert`);
/// [`PostgresStore::connect_with_tls`](crate::PostgresStore::connect_with_tls) takes them as
/// they are.
///
/// ```
/// use healthanalyzer_store_postgres::{SslMode, TlsOptions};
///
/// let tls = TlsOptions::new(SslMode::VerifyFull).with_root_cert_file("/etc/health/db-ca.pem");
/// assert_eq!(tls.mode(), SslMode::VerifyFull);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    mode: SslMode,
    roots: RootCerts,
}

impl TlsOptions {
    /// The mode, with no root certificates given ([`RootCerts::Unset`]).
    pub fn new(mode: SslMode) -> Self {
        Self {
            mode,
            roots: RootCerts::Unset,
        }
    }

    /// Checks the server's certificate against the certificates of the PEM file at `path`.
    pub fn with_root_cert_file(self, path: impl Into<PathBuf>) -> Self {
        self.with_roots(RootCerts::File(path.into()))
    }

    /// Checks the server's certificate against `roots`.
    pub fn with_roots(mut self, roots: RootCerts) -> Self {
        self.roots = roots;
        self
    }

    /// The mode.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The root certificates.
    pub fn roots(&self) -> &RootCerts {
        &self.roots
    }

    /// The root certificate file, when one is given.
    pub fn root_cert_file(&self) -> Option<&Path> {
        match &self.roots {
            RootCerts::File(p) => Some(p),
            _ => None,
        }
    }

    /// The options of a libpq `sslmode` and `sslrootcert`, both optional, as written in a URL
    /// (already percent-decoded). `sslrootcert=system` means [`RootCerts::System`] and makes
    /// `verify-full` the default.
    pub(crate) fn from_params(
        mode: Option<&str>,
        root_cert: Option<&str>,
    ) -> Result<Self, PostgresError> {
        let roots = match root_cert {
            None => RootCerts::Unset,
            Some("") => {
                return Err(PostgresError::Url {
                    reason: "sslrootcert is empty; give the path of a PEM file, or system".into(),
                });
            }
            Some("system") => RootCerts::System,
            Some(path) => RootCerts::File(PathBuf::from(path)),
        };
        let mode = match mode {
            Some(m) => m.parse()?,
            None if roots == RootCerts::System => SslMode::VerifyFull,
            None => SslMode::default(),
        };
        let options = Self { mode, roots };
        options.check()?;
        Ok(options)
    }

    fn check(&self) -> Result<(), PostgresError> {
        if self.roots == RootCerts::System && self.mode != SslMode::VerifyFull {
            return Err(PostgresError::Url {
                reason: format!(
                    "sslrootcert=system needs sslmode=verify-full (not {}): any certificate a public CA issued would pass a weaker check",
                    self.mode
                ),
            });
        }
        Ok(())
    }

    /// The mode a `tokio-postgres` configuration asks for, with no root certificates.
    pub(crate) fn of_config(config: &tokio_postgres::Config) -> Self {
        Self::new(match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Prefer => SslMode::Prefer,
            // `Require`, and any mode a later tokio-postgres adds: encrypted.
            _ => SslMode::Require,
        })
    }
}

/// Opens the pool's connections as [`TlsOptions`] say.
pub(crate) struct Connector {
    mode: SslMode,
    /// The rustls connector; `None` for [`SslMode::Disable`].
    tls: Option<MakeRustlsConnect>,
}

type ConnectFuture<'a> = Pin<
    Box<dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>> + Send + 'a>,
>;

impl Connector {
    /// Loads the root certificates and makes the rustls configuration.
    pub(crate) fn new(options: &TlsOptions) -> Result<Self, PostgresError> {
        options.check()?;
        let mode = options.mode;
        if mode == SslMode::Disable {
            return Ok(Self { mode, tls: None });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match (&options.roots, mode) {
            (RootCerts::Unset, SslMode::Prefer | SslMode::Require) => Arc::new(ChainVerifier {
                roots: None,
                algorithms,
            }),
            (roots, SslMode::VerifyFull) => WebPkiServerVerifier::builder_with_provider(
                Arc::new(load(roots)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| PostgresError::Tls {
                reason: format!("the trusted roots cannot be used: {e}"),
            })?,
            (roots, _) => Arc::new(ChainVerifier {
                roots: Some(Arc::new(load(roots)?)),
                algorithms,
            }),
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PostgresError::Tls {
                reason: format!("no TLS protocol version available: {e}"),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // PostgreSQL 17 asks for it with `sslnegotiation=direct`; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self {
            mode,
            tls: Some(MakeRustlsConnect::new(config)),
        })
    }

    /// The mode the connections are opened with.
    pub(crate) fn mode(&self) -> SslMode {
        self.mode
    }
}

impl deadpool_postgres::Connect for Connector {
    fn connect(&self, config: &tokio_postgres::Config) -> ConnectFuture<'_> {
        let mut config = config.clone();
        Box::pin(async move {
            let Some(tls) = &self.tls else {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) = config.connect(NoTls).await?;
                return Ok((client, spawn(connection)));
            };
            if self.mode != SslMode::Prefer {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let (client, connection) = config.connect(tls.clone()).await?;
                return Ok((client, spawn(connection)));
            }
            // Prefer: tokio-postgres goes plain by itself when the server offers no TLS; when the
            // handshake fails, try again without TLS, as libpq does.
            config.ssl_mode(tokio_postgres::config::SslMode::Prefer);
            let failed = Arc::new(AtomicBool::new(false));
            let flagged = Flagged {
                inner: tls.clone(),
                failed: failed.clone(),
            };
            match config.connect(flagged).await {
                Ok((client, connection)) => Ok((client, spawn(connection))),
                Err(_) if failed.load(Ordering::Relaxed) => {
                    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                    let (client, connection) = config.connect(NoTls).await?;
                    Ok((client, spawn(connection)))
                }
                Err(e) => Err(e),
            }
        })
    }
}

/// Runs a connection's I/O. Its end (an error included) shows to the client as a closed
/// connection, which the pool then drops.
fn spawn<F>(connection: F) -> JoinHandle<()>
where
    F: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let _ended = connection.await;
    })
}

/// Loads the roots to check a certificate against.
fn load(roots: &RootCerts) -> Result<RootCertStore, PostgresError> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| PostgresError::Tls {
                reason: format!("cannot read sslrootcert {shown}: {e}"),
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| PostgresError::Tls {
                    reason: format!("sslrootcert {shown} is not a PEM file of certificates: {e}"),
                })?;
                store.add(cert).map_err(|e| PostgresError::Tls {
                    reason: format!("sslrootcert {shown} holds a certificate rustls refuses: {e}"),
                })?;
            }
            if store.is_empty() {
                return Err(PostgresError::Tls {
                    reason: format!("sslrootcert {shown} holds no PEM certificate"),
                });
            }
        }
        RootCerts::System | RootCerts::Unset => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(PostgresError::Tls {
                    reason: "the system has no trusted root certificates (none found where SSL_CERT_FILE, SSL_CERT_DIR or the system's defaults point); give sslrootcert=<PEM file>".into(),
                });
            }
        }
    }
    Ok(store)
}

/// `require` and `prefer` with no roots (`roots: None`): any certificate, as libpq; `verify-ca`
/// and the weaker modes given roots: the chain up to a trusted root, not the host name. Either
/// way the handshake's signatures are checked, so the session is bound to the certificate's key.
#[derive(Debug)]
struct ChainVerifier {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Whether a driver error is a certificate the TLS check refused: a `rustls` certificate error
/// somewhere in its chain (`tokio-rustls` wraps it in an `io::Error`).
pub(crate) fn is_certificate_error(e: &tokio_postgres::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if matches!(
            tls,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) {
            return true;
        }
        next = err.source();
    }
    false
}

/// A rustls connector that notes when a handshake fails, so `prefer` knows to try without TLS.
#[derive(Clone)]
struct Flagged {
    inner: MakeRustlsConnect,
    failed: Arc<AtomicBool>,
}

impl MakeTlsConnect<Socket> for Flagged {
    type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
    type TlsConnect = FlaggedConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        Ok(FlaggedConnect {
            inner: <MakeRustlsConnect as MakeTlsConnect<Socket>>::make_tls_connect(
                &mut self.inner,
                domain,
            )?,
            failed: self.failed.clone(),
        })
    }
}

struct FlaggedConnect {
    inner: <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect,
    failed: Arc<AtomicBool>,
}

type Inner = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;

impl TlsConnect<Socket> for FlaggedConnect {
    type Stream = <Inner as TlsConnect<Socket>>::Stream;
    type Error = <Inner as TlsConnect<Socket>>::Error;
    type Future = FlaggedFuture;

    fn connect(self, stream: Socket) -> Self::Future {
        FlaggedFuture {
            inner: self.inner.connect(stream),
            failed: self.failed,
        }
    }
}

struct FlaggedFuture {
    inner: <Inner as TlsConnect<Socket>>::Future,
    failed: Arc<AtomicBool>,
}

impl Future for FlaggedFuture {
    type Output =
        Result<<Inner as TlsConnect<Socket>>::Stream, <Inner as TlsConnect<Socket>>::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let out = Pin::new(&mut this.inner).poll(cx);
        if let Poll::Ready(Err(_)) = &out {
            this.failed.store(true, Ordering::Relaxed);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_as_libpq_writes_them() {
        for mode in SslMode::ALL {
            assert_eq!(mode.as_str().parse::<SslMode>().ok(), Some(mode));
            assert_eq!(mode.to_string(), mode.as_str());
        }
        assert_eq!(SslMode::default(), SslMode::Prefer);
        for bad in ["", "allow", "verify_full", "VERIFY-FULL", "true"] {
            let err = bad.parse::<SslMode>().expect_err(bad).to_string();
            assert!(
                err.contains("disable, prefer, require, verify-ca, verify-full"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn params_follow_libpq() {
        let o = TlsOptions::from_params(None, None).expect("defaults");
        assert_eq!(o, TlsOptions::new(SslMode::Prefer));
        let o = TlsOptions::from_params(Some("verify-ca"), Some("/x/ca.pem")).expect("file");
        assert_eq!(o.mode(), SslMode::VerifyCa);
        assert_eq!(o.root_cert_file(), Some(Path::new("/x/ca.pem")));
        // `system` makes verify-full the default and refuses anything weaker.
        let o = TlsOptions::from_params(None, Some("system")).expect("system");
        assert_eq!(
            (o.mode(), o.roots()),
            (SslMode::VerifyFull, &RootCerts::System)
        );
        for weak in ["require", "verify-ca", "prefer"] {
            let err = TlsOptions::from_params(Some(weak), Some("system")).expect_err(weak);
            assert!(err.to_string().contains("verify-full"), "{err}");
        }
        assert!(TlsOptions::from_params(None, Some("")).is_err());
        assert!(TlsOptions::from_params(Some("maybe"), None).is_err());
    }

    #[test]
    fn connectors_load_roots_or_say_why_not() {
        // No TLS at all, and no check: nothing to load.
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            let c = Connector::new(&TlsOptions::new(mode)).expect("connector");
            assert_eq!(
                (c.mode(), c.tls.is_some()),
                (mode, mode != SslMode::Disable)
            );
        }
        let dir = std::env::temp_dir().join(format!("ha-pg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let missing = dir.join("missing.pem");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        for (path, says) in [
            (&missing, "cannot read"),
            (&empty, "holds no PEM certificate"),
        ] {
            for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
                let err = Connector::new(&TlsOptions::new(mode).with_root_cert_file(path))
                    .err()
                    .expect("refused");
                let text = err.to_string();
                assert!(matches!(err, PostgresError::Tls { .. }), "{text}");
                assert!(
                    text.contains(says) && text.contains("sslrootcert"),
                    "{text}"
                );
            }
        }
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).expect("ca");
        let good = dir.join("good.pem");
        std::fs::write(&good, ca.cert.pem()).expect("write");
        for mode in [SslMode::Prefer, SslMode::VerifyCa, SslMode::VerifyFull] {
            let c = Connector::new(&TlsOptions::new(mode).with_root_cert_file(&good));
            assert!(c.is_ok(), "{mode}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
