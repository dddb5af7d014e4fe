//! TLS through rustls (feature `tls`): a server's certificate and key from PEM files, and
//! the roots a `wss://` client trusts.
//!
//! rustls runs with its `ring` provider, chosen explicitly rather than through the
//! process-wide default, so another crate enabling a second provider cannot make these
//! builders panic.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Server: terminate TLS, then run the WebSocket handshake on the TLS stream.
//! let acceptor = switchboard::tls::acceptor_from_pem("cert.pem", "key.pem")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9443").await?;
//! let (tcp, _) = listener.accept().await?;
//! let mut ws = switchboard::accept(acceptor.accept(tcp).await?).await?;
//! # let _ = ws.recv().await;
//!
//! // Client: the webpki roots plus a private CA.
//! let config = switchboard::tls::client_config(["my-ca.pem"])?;
//! let tcp = tokio::net::TcpStream::connect("127.0.0.1:9443").await?;
//! let tls = switchboard::tls::connect(tcp, "localhost", config).await?;
//! let (ws, _) = switchboard::Client::default().connect_on(tls, "wss://localhost:9443/").await?;
//! # Ok(()) }
//! ```

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};

/// The rustls crate this module builds on, for its configuration types.
pub use rustls;
/// The stream of a TLS client connection, for a `wss://` handshake on it.
///
/// No example: a stream only the library hands out, from [`connect`] (or
/// [`TlsConnector::connect`]); give it to [`Client::connect_on`](crate::Client::connect_on)
/// as the [module example](self) does.
pub use tokio_rustls::client::TlsStream as ClientTlsStream;
/// The stream of a TLS server connection, for the WebSocket handshake on it.
///
/// No example: a stream only the library hands out, from [`TlsAcceptor::accept`]; give it
/// to [`accept`](crate::accept) as the [module example](self) does.
pub use tokio_rustls::server::TlsStream as ServerTlsStream;
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use switchboard::tls::{server_config_from_pem, TlsAcceptor};
///
/// let acceptor = TlsAcceptor::from(server_config_from_pem("cert.pem", "key.pem")?);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9443").await?;
/// let (tcp, _peer) = listener.accept().await?;
/// let ws = switchboard::accept(acceptor.accept(tcp).await?).await?;
/// # let _ = ws;
/// # Ok(()) }
/// ```
pub use tokio_rustls::TlsAcceptor;
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use switchboard::tls::{default_client_config, rustls::pki_types::ServerName, TlsConnector};
///
/// let connector = TlsConnector::from(default_client_config());
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:9443").await?;
/// let tls = connector.connect(ServerName::try_from("localhost")?, tcp).await?;
/// let (_ws, _response) = switchboard::Client::default().connect_on(tls, "wss://localhost:9443/").await?;
/// # Ok(()) }
/// ```
pub use tokio_rustls::TlsConnector;

/// The ALPN protocol both sides announce: the WebSocket handshake is HTTP/1.1 (RFC 6455 §4),
/// and a browser that got `h2` from ALPN would not send it.
const ALPN_HTTP_11: &[u8] = b"http/1.1";

/// Why a TLS configuration could not be built. Each variant names the file it is about.
///
/// ```
/// use std::path::Path;
/// use switchboard::tls::{load_certificates, TlsError};
///
/// match load_certificates("no-such-cert.pem") {
///     Err(TlsError::Read { path, source }) => {
///         assert_eq!(path, Path::new("no-such-cert.pem"));
///         assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
///     }
///     other => panic!("expected a read error, got {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not valid PEM, or a PEM section is not what its label says.
    #[error("{}: invalid PEM: {reason}", .path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file has no `CERTIFICATE` section.
    #[error("{}: no PEM certificate found", .0.display())]
    NoCertificate(PathBuf),
    /// The file has no private key section (`PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY`).
    #[error("{}: no PEM private key found", .0.display())]
    NoPrivateKey(PathBuf),
    /// rustls refused the configuration (a key that does not match the certificate, a CA
    /// certificate it cannot parse, …).
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
}

fn pem_error(path: &Path, error: pem::Error) -> TlsError {
    match error {
        pem::Error::Io(source) => TlsError::Read {
            path: path.to_owned(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// The crypto provider every configuration here uses.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Reads every certificate in a PEM file, in order (for a server: its certificate first,
/// then the intermediates). [`acceptor_from_pem`] and [`client_config`] call it; its own
/// use is building a rustls configuration by hand.
///
/// ```no_run
/// use switchboard::tls::{client_config_with_roots, load_certificates, webpki_roots};
///
/// let mut roots = webpki_roots();
/// for cert in load_certificates("my-ca.pem")? {
///     roots.add(cert)?;
/// }
/// let config = client_config_with_roots(roots)?;
/// # let _ = config;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_certificates(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
///
/// ```no_run
/// use std::sync::Arc;
/// use switchboard::tls::{load_certificates, load_private_key, rustls, TlsAcceptor};
///
/// let provider = Arc::new(rustls::crypto::ring::default_provider());
/// let config = rustls::ServerConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()?
///     .with_no_client_auth()
///     .with_single_cert(load_certificates("cert.pem")?, load_private_key("key.pem")?)?;
/// let acceptor = TlsAcceptor::from(Arc::new(config));
/// # let _ = acceptor;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey(path.to_owned()),
        other => pem_error(path, other),
    })
}

/// A server configuration from a PEM certificate chain and private key, announcing
/// `http/1.1` over ALPN.
///
/// ```no_run
/// use switchboard::tls::{server_config_from_pem, TlsAcceptor};
///
/// let config = server_config_from_pem("cert.pem", "key.pem")?;
/// assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
/// let acceptor = TlsAcceptor::from(config);
/// # let _ = acceptor;
/// # Ok::<(), switchboard::tls::TlsError>(())
/// ```
pub fn server_config_from_pem(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certificates(cert_path)?;
    let key = load_private_key(key_path)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![ALPN_HTTP_11.to_vec()];
    Ok(Arc::new(config))
}

/// A [`TlsAcceptor`] from a PEM certificate chain and private key: call
/// [`TlsAcceptor::accept`] on each TCP stream, then run the WebSocket handshake on the
/// result.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use switchboard::router::{Route, Router};
///
/// let acceptor = switchboard::tls::acceptor_from_pem("cert.pem", "key.pem")?;
/// let router = Router::new()
///     .fallback(Route::new(|_ws, _info| async {}))
///     .tls(acceptor); // wss://
/// router.serve(tokio::net::TcpListener::bind("0.0.0.0:443").await?).await?;
/// # Ok(()) }
/// ```
pub fn acceptor_from_pem(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<TlsAcceptor, TlsError> {
    server_config_from_pem(cert_path, key_path).map(TlsAcceptor::from)
}

/// The Mozilla root store as shipped by the `webpki-roots` crate: what a `wss://` client
/// trusts by default.
///
/// ```
/// use switchboard::tls::{client_config_with_roots, webpki_roots};
///
/// let roots = webpki_roots();
/// assert!(roots.len() > 50);
/// let config = client_config_with_roots(roots)?; // what `default_client_config` holds
/// # let _ = config;
/// # Ok::<(), switchboard::tls::TlsError>(())
/// ```
pub fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A client configuration that trusts `roots`.
///
/// ```no_run
/// use switchboard::tls::{client_config_with_roots, load_certificates, rustls::RootCertStore};
///
/// // Only the private CA, not the public roots.
/// let mut roots = RootCertStore::empty();
/// for cert in load_certificates("my-ca.pem")? {
///     roots.add(cert)?;
/// }
/// let client = switchboard::Client::builder().tls_config(client_config_with_roots(roots)?).build()?;
/// # let _ = client;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn client_config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_11.to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that trusts the webpki roots plus every certificate in the
/// given PEM files (a private or test CA: `switchboard connect --ca FILE`).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = switchboard::tls::client_config(["test-ca.pem"])?;
/// let client = switchboard::Client::builder().tls_config(tls).build()?;
/// let (_ws, _response) = client.connect("wss://localhost:9443/").await?;
/// # Ok(()) }
/// ```
pub fn client_config<P: AsRef<Path>>(
    extra_ca_files: impl IntoIterator<Item = P>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = webpki_roots();
    for path in extra_ca_files {
        for cert in load_certificates(path.as_ref())? {
            roots.add(cert)?;
        }
    }
    client_config_with_roots(roots)
}

/// Like [`client_config`], and each certificate in the files is also pinned: a server that
/// presents exactly that certificate is trusted even where the chain rules would refuse it.
/// That is what a self-signed test certificate needs (`openssl req -x509 -newkey rsa:2048
/// -nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost` makes a CA certificate,
/// which webpki refuses as a server's own: `CaUsedAsEndEntity`). The server name must still
/// match the pinned certificate; its dates are not checked, since the user chose it.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // The self-signed certificate the test server presents.
/// let tls = switchboard::tls::client_config_pinning(["server-cert.pem"])?;
/// let client = switchboard::Client::builder().tls_config(tls).build()?;
/// let (_ws, _response) = client.connect("wss://localhost:9443/").await?;
/// # Ok(()) }
/// ```
pub fn client_config_pinning<P: AsRef<Path>>(
    ca_or_server_cert_files: impl IntoIterator<Item = P>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = webpki_roots();
    let mut pinned = Vec::new();
    for path in ca_or_server_cert_files {
        for cert in load_certificates(path.as_ref())? {
            // A certificate webpki cannot use as a trust anchor can still be pinned.
            let _ = roots.add(cert.clone());
            pinned.push(cert);
        }
    }
    let webpki =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
    Ok(with_verifier(verify::Trust::Pinning { pinned, webpki }))
}

/// A client configuration that accepts any server certificate (`connect --insecure`): the
/// connection is encrypted but the server is not authenticated, so anyone on the path can
/// read it. For tests against a server whose certificate is at hand, use
/// [`client_config_pinning`] instead. The handshake signatures are still checked.
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard::Error> {
/// let tls = switchboard::tls::insecure_client_config(); // tests only
/// let client = switchboard::Client::builder().tls_config(tls).build()?;
/// let (_ws, _response) = client.connect("wss://127.0.0.1:9443/").await?;
/// # Ok(()) }
/// ```
pub fn insecure_client_config() -> Arc<ClientConfig> {
    with_verifier(verify::Trust::Any)
}

fn with_verifier(trust: verify::Trust) -> Arc<ClientConfig> {
    let verifier = Arc::new(verify::Verifier {
        trust,
        provider: provider(),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_11.to_vec()];
    Arc::new(config)
}

/// Why a TLS connection failed, in words that say what to do, for the error chain of a
/// failed `wss://` connect; `None` if no TLS error is in it.
///
/// ```no_run
/// # async fn run() {
/// if let Err(e) = switchboard::connect("wss://127.0.0.1:9443/").await {
///     match switchboard::tls::explain(&e) {
///         Some(why) => eprintln!("TLS failed: {why}"),
///         None => eprintln!("{e}"),
///     }
/// }
/// # }
/// ```
pub fn explain(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        let inner = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .or_else(|| e.downcast_ref::<rustls::Error>());
        if let Some(tls) = inner {
            return Some(explain_rustls(tls));
        }
        next = e.source();
    }
    None
}

fn explain_rustls(error: &rustls::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    let why = match error {
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            return format!(
                "the server does not speak TLS (is it ws:// rather than wss://?) ({error})"
            )
        }
        E::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "the server's certificate is not signed by a CA this client trusts: \
                 pass that CA, or for a self-signed certificate the certificate itself, with --ca FILE",
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the server's certificate is not for the host name in the URL: connect with a name \
                 the certificate lists (its subjectAltName)"
            }
            C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired",
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clocks)"
            }
            C::Revoked => "the server's certificate has been revoked",
            C::BadSignature => "the server's certificate has a bad signature",
            C::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
                "the server presents a CA certificate as its own (a self-signed certificate made \
                 with `openssl req -x509`): pass exactly that certificate with --ca FILE"
            }
            _ => "the server's certificate was refused",
        },
        E::AlertReceived(_) => "the server refused the TLS handshake",
        E::NoApplicationProtocol => "the server and this client share no ALPN protocol",
        _ => "the TLS handshake failed",
    };
    format!("{why} ({error}); --insecure skips the check, for tests only")
}

mod verify {
    //! The one certificate verifier behind `connect --ca` (pinning) and `--insecure`.

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, Error, SignatureScheme};
    use std::sync::Arc;

    /// Which server certificates are trusted.
    #[derive(Debug)]
    pub(super) enum Trust {
        /// The webpki rules, or exactly one of the pinned certificates.
        Pinning {
            pinned: Vec<CertificateDer<'static>>,
            webpki: Arc<WebPkiServerVerifier>,
        },
        /// Any certificate (`--insecure`).
        Any,
    }

    /// Checks the certificate by its [`Trust`]; the handshake signatures are checked
    /// against the certificate in every case, with the provider's algorithms (what
    /// webpki's verifier does too), so both kinds share that half.
    #[derive(Debug)]
    pub(super) struct Verifier {
        pub(super) trust: Trust,
        pub(super) provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for Verifier {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            let Trust::Pinning { pinned, webpki } = &self.trust else {
                return Ok(ServerCertVerified::assertion());
            };
            let refused = match webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(verified) => return Ok(verified),
                Err(refused) => refused,
            };
            if !pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) {
                return Err(refused);
            }
            // A pinned certificate still has to be the named server's.
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            let algorithms = &self.provider.signature_verification_algorithms;
            rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            let algorithms = &self.provider.signature_verification_algorithms;
            rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

/// The configuration [`crate::connect`] uses for `wss://` unless told otherwise: the
/// webpki roots, built once.
///
/// ```
/// use std::sync::Arc;
/// use switchboard::tls::default_client_config;
///
/// let config = default_client_config();
/// assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
/// assert!(Arc::ptr_eq(&config, &default_client_config())); // built once
/// ```
pub fn default_client_config() -> Arc<ClientConfig> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            client_config_with_roots(webpki_roots())
                .expect("the ring provider supports the default protocol versions")
        })
        .clone()
}

/// Runs the TLS client handshake on `stream` for the server `host` (a DNS name or an IP
/// address, with or without IPv6 brackets), checking its certificate against `config`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use switchboard::tls;
///
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:9443").await?;
/// let stream = tls::connect(tcp, "localhost", tls::default_client_config()).await?;
/// let client = switchboard::Client::default();
/// let (_ws, _response) = client.connect_on(stream, "wss://localhost:9443/").await?;
/// # Ok(()) }
/// ```
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    host: &str,
    config: Arc<ClientConfig>,
) -> io::Result<ClientTlsStream<S>> {
    let name = server_name(host)?;
    TlsConnector::from(config).connect(name, stream).await
}

/// The name to verify the certificate against.
pub(crate) fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_owned()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid TLS server name {host:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_accept_dns_names_and_ip_addresses() {
        assert!(matches!(
            server_name("example.com").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert_eq!(
            server_name("bad name!").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn the_default_client_config_trusts_the_webpki_roots() {
        let config = default_client_config();
        assert_eq!(config.alpn_protocols, vec![ALPN_HTTP_11.to_vec()]);
        assert!(webpki_roots().len() > 50);
    }
}
