//! The client side: [`connect`] and [`Client`].

use crate::config::WebSocketConfig;
use crate::error::Error;
use crate::head::{read_head, Head};
use crate::proxy::Proxy;
use crate::stream::MaybeTlsStream;
use crate::websocket::WebSocket;
use bytes::BytesMut;
use http::{HeaderName, HeaderValue, Uri};
use std::io;
use std::time::Duration;
use switchboard_protocol::handshake::{ClientHandshake, HandshakeError};
use switchboard_protocol::Connection;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of a refusal's body kept for [`RefusalBody`], and how long it may take.
const REFUSAL_BODY_MAX: usize = 4 << 10;
const REFUSAL_BODY_WAIT: Duration = Duration::from_secs(2);

/// The start of the body of a response that refused the handshake (a 403's reason, say),
/// in the extensions of [`Error::response`]: at most 4 KiB, read within 2 s, as far as
/// `Content-Length` says or the server closes.
///
/// ```no_run
/// use switchboard::RefusalBody;
/// # async fn run() {
/// if let Err(e) = switchboard::connect("ws://127.0.0.1:9001/private").await {
///     let body = e.response().and_then(|r| r.extensions().get::<RefusalBody>());
///     if let (Some(status), Some(RefusalBody(body))) = (e.status(), body) {
///         eprintln!("refused with {status}: {}", String::from_utf8_lossy(body));
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalBody(pub bytes::Bytes);

/// Opens a WebSocket connection to a `ws://` URL with the default [`Client`]; returns the
/// connection and the server's 101 response.
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard::Error> {
/// let (mut ws, _response) = switchboard::connect("ws://127.0.0.1:9001/chat").await?;
/// ws.send("hello").await?;
/// if let Some(reply) = ws.recv().await {
///     println!("{:?}", reply?);
/// }
/// ws.close(switchboard::CloseCode::NORMAL, "bye").await?;
/// # Ok(()) }
/// ```
pub async fn connect(
    request: impl IntoClientRequest,
) -> Result<(WebSocket<MaybeTlsStream>, http::Response<()>), Error> {
    Client::default().connect(request).await
}

/// What [`connect`] and [`Client::connect`] take: a URL (`&str`, `String`, [`Uri`]), or a
/// whole `http::Request<()>` whose URI is the URL and whose headers are sent with the
/// upgrade request (as tokio-tungstenite's `IntoClientRequest`). The handshake's own
/// headers (`Upgrade`, `Connection`, `Sec-WebSocket-*`) are the library's and are not
/// taken from it.
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard::Error> {
/// let request = http::Request::get("ws://127.0.0.1:9001/chat")
///     .header("Authorization", "Bearer s3cret")
///     .body(())
///     .expect("a valid request");
/// let (ws, _response) = switchboard::connect(request).await?;
/// # let _ = ws; Ok(()) }
/// ```
pub trait IntoClientRequest {
    /// The request, or why this is not one ([`crate::ErrorKind::InvalidInput`]).
    fn into_client_request(self) -> Result<http::Request<()>, Error>;
}

impl IntoClientRequest for http::Request<()> {
    fn into_client_request(self) -> Result<http::Request<()>, Error> {
        Ok(self)
    }
}

impl IntoClientRequest for Uri {
    fn into_client_request(self) -> Result<http::Request<()>, Error> {
        let mut request = http::Request::new(());
        *request.uri_mut() = self;
        Ok(request)
    }
}

impl IntoClientRequest for &Uri {
    fn into_client_request(self) -> Result<http::Request<()>, Error> {
        self.clone().into_client_request()
    }
}

impl IntoClientRequest for &str {
    fn into_client_request(self) -> Result<http::Request<()>, Error> {
        let uri: Uri = self
            .parse()
            .map_err(|e| Error::invalid_input(format!("invalid URL {self:?}: {e}")))?;
        uri.into_client_request()
    }
}

impl IntoClientRequest for &String {
    fn into_client_request(self) -> Result<http::Request<()>, Error> {
        self.as_str().into_client_request()
    }
}

impl IntoClientRequest for String {
    fn into_client_request(self) -> Result<http::Request<()>, Error> {
        self.as_str().into_client_request()
    }
}

/// A configured WebSocket client: subprotocols to offer, extra headers, limits and
/// compression. Reusable for many connections.
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard::Error> {
/// use switchboard::WebSocketConfig;
/// let (ws, response) = switchboard::Client::builder()
///     .protocols(["chat.v2"])
///     .header("Authorization", "Bearer s3cret")
///     .config(WebSocketConfig::default().compression(true))
///     .connect("ws://127.0.0.1:9001/chat")
///     .await?;
/// assert_eq!(ws.protocol(), Some("chat.v2"));
/// # let _ = response; Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Client {
    config: WebSocketConfig,
    protocols: Vec<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    proxy: ProxyChoice,
    /// The TLS configuration for `wss://`; the webpki roots when `None`.
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Whether `wss://` goes over HTTP/2 (RFC 8441), and its settings.
    #[cfg(feature = "http2")]
    http2: (crate::http2::Http2Mode, crate::http2::Http2Config),
}

/// How a [`Client`] reaches servers.
#[derive(Debug, Clone, Default)]
enum ProxyChoice {
    /// Directly.
    #[default]
    Direct,
    /// Through the proxy the environment names for the target, if any.
    FromEnv,
    /// Through this proxy.
    Fixed(Proxy),
}

/// Builds a [`Client`].
///
/// ```
/// let client = switchboard::Client::builder()
///     .protocols(["chat.v2", "chat.v1"])
///     .header("Origin", "https://app.example")
///     .build()?;
/// # let _ = client;
/// // An invalid header shows up when the builder finishes.
/// let bad = switchboard::Client::builder().header("bad\nname", "x").build();
/// assert_eq!(bad.unwrap_err().kind(), switchboard::ErrorKind::InvalidInput);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct ClientBuilder {
    client: Client,
    /// The first invalid header given, reported by `build`/`connect`.
    invalid: Option<String>,
}

impl ClientBuilder {
    /// Offers these subprotocols (`Sec-WebSocket-Protocol`), most preferred first.
    pub fn protocols(mut self, protocols: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.client
            .protocols
            .extend(protocols.into_iter().map(Into::into));
        self
    }

    /// Adds a header to the upgrade request (`Origin`, `Authorization`, `Cookie`, …). The
    /// handshake's own headers (`Upgrade`, `Connection`, `Sec-WebSocket-*`) are set by the
    /// library and ignored here.
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(name), Ok(value)) => self.client.headers.push((name, value)),
            _ => {
                self.invalid
                    .get_or_insert_with(|| "invalid header name or value".to_owned());
            }
        }
        self
    }

    /// The configuration connections get (limits, compression to offer, timers; the
    /// handshake timeout bounds TCP, TLS and the handshake together);
    /// [`WebSocketConfig::default`] if not set.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.client.config = config;
        self
    }

    /// Connects through this HTTP proxy (CONNECT tunnel), whatever the environment says.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.client.proxy = ProxyChoice::Fixed(proxy);
        self
    }

    /// Connects through the proxy the environment names (`HTTPS_PROXY` for `wss://`,
    /// `HTTP_PROXY` for `ws://`, `ALL_PROXY`, minus `NO_PROXY`), as curl does; see
    /// [`Proxy::from_env`]. Off by default: a library should not change where it connects
    /// behind its caller's back.
    pub fn proxy_from_env(mut self, on: bool) -> Self {
        self.client.proxy = if on {
            ProxyChoice::FromEnv
        } else {
            ProxyChoice::Direct
        };
        self
    }

    /// The TLS configuration for `wss://` (roots, client certificates); by default the
    /// webpki roots. [`crate::tls::client_config`] adds a private CA.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.client.tls = Some(config);
        self
    }

    /// Opens WebSockets over HTTP/2 (RFC 8441 extended CONNECT): never (the default),
    /// automatically when the server offers it with a fallback to HTTP/1.1, or always
    /// (feature `http2`; see [`Http2Mode`](crate::http2::Http2Mode)).
    #[cfg(feature = "http2")]
    pub fn http2(mut self, mode: crate::http2::Http2Mode) -> Self {
        self.client.http2.0 = mode;
        self
    }

    /// The windows and buffers of the client's h2 connections (feature `http2`).
    #[cfg(feature = "http2")]
    pub fn http2_config(mut self, config: crate::http2::Http2Config) -> Self {
        self.client.http2.1 = config;
        self
    }

    /// Finishes the client.
    pub fn build(self) -> Result<Client, Error> {
        match self.invalid {
            Some(why) => Err(Error::invalid_input(why)),
            None => Ok(self.client),
        }
    }

    /// Builds the client and connects to `request` (a URL or an `http::Request`); see
    /// [`Client::connect`].
    pub async fn connect(
        self,
        request: impl IntoClientRequest,
    ) -> Result<(WebSocket<MaybeTlsStream>, http::Response<()>), Error> {
        self.build()?.connect(request).await
    }

    /// Builds the client and runs the handshake on a stream you opened; see
    /// [`Client::connect_on`].
    pub async fn connect_on<S: AsyncRead + AsyncWrite + Unpin>(
        self,
        stream: S,
        request: impl IntoClientRequest,
    ) -> Result<(WebSocket<S>, http::Response<()>), Error> {
        self.build()?.connect_on(stream, request).await
    }
}

impl Client {
    /// Starts building a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The configuration connections get.
    pub fn config(&self) -> &WebSocketConfig {
        &self.config
    }

    /// Connects to a `ws://host[:port]/path` URL: opens TCP, sends the upgrade request,
    /// checks the 101 response (accept key, subprotocol and extensions), and returns the
    /// connection with the response.
    ///
    /// A server that answers with another status gives a [`crate::ErrorKind::Handshake`] error
    /// whose [`Error::status`] and [`Error::response`] say what it answered. `wss://` runs
    /// TLS through rustls (feature `tls`; without it, `wss://` is refused with
    /// [`crate::ErrorKind::InvalidInput`]); a certificate that does not verify is an
    /// [`crate::ErrorKind::Tls`] error saying why. With a proxy, the TCP connection is a
    /// CONNECT tunnel through it.
    pub async fn connect(
        &self,
        request: impl IntoClientRequest,
    ) -> Result<(WebSocket<MaybeTlsStream>, http::Response<()>), Error> {
        let handshake = self.handshake_for(request.into_client_request()?)?;
        #[cfg(not(feature = "tls"))]
        if handshake.is_secure() {
            return Err(Error::invalid_input(
                "wss:// needs the `tls` feature of switchboard",
            ));
        }
        let work = async {
            let tcp = self.open_tcp(&handshake).await?;
            #[cfg(feature = "tls")]
            if handshake.is_secure() {
                let config = self
                    .tls
                    .clone()
                    .unwrap_or_else(crate::tls::default_client_config);
                #[cfg(feature = "http2")]
                if self.http2.0 != crate::http2::Http2Mode::Never {
                    return self.connect_tls_h2(tcp, config, handshake).await;
                }
                let tls = crate::tls::connect(tcp, handshake.host(), config).await?;
                return self
                    .run_handshake(MaybeTlsStream::Rustls(Box::new(tls)), handshake)
                    .await;
            }
            #[cfg(feature = "http2")]
            if self.http2.0 == crate::http2::Http2Mode::Force {
                // ws:// with HTTP/2 forced: h2 with prior knowledge (h2c).
                let peer = tcp.peer_addr().ok();
                return self
                    .open_h2(MaybeTlsStream::Plain(tcp), &handshake, peer)
                    .await?
                    .ok_or_else(no_extended_connect);
            }
            self.run_handshake(MaybeTlsStream::Plain(tcp), handshake)
                .await
        };
        self.with_timeout(work).await
    }

    /// The TCP connection to the handshake's host, directly or through the proxy.
    async fn open_tcp(&self, handshake: &ClientHandshake) -> Result<TcpStream, Error> {
        let (host, port) = (handshake.host(), handshake.port());
        let proxy = match &self.proxy {
            ProxyChoice::Direct => None,
            ProxyChoice::FromEnv => Proxy::from_env(handshake.is_secure(), host)?,
            ProxyChoice::Fixed(proxy) => Some(proxy.clone()),
        };
        let tcp = match proxy {
            Some(proxy) => proxy.tunnel(host, port).await?,
            None => TcpStream::connect((host, port)).await?,
        };
        // Small frames should leave at once: coalescing is done by `feed`/`flush`.
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// `wss://` offering `h2` over ALPN: an RFC 8441 stream when the server picks h2 and
    /// allows extended CONNECT; otherwise (in `Auto` mode) the HTTP/1.1 upgrade, on a
    /// fresh connection if this one already speaks h2.
    #[cfg(feature = "http2")]
    async fn connect_tls_h2(
        &self,
        tcp: TcpStream,
        config: std::sync::Arc<rustls::ClientConfig>,
        handshake: ClientHandshake,
    ) -> Result<(WebSocket<MaybeTlsStream>, http::Response<()>), Error> {
        use crate::http2::Http2Mode;
        let force = self.http2.0 == Http2Mode::Force;
        let mut offer = (*config).clone();
        // Forced h2 offers http/1.1 too, so that a server without h2 says so by its choice
        // (and gets a clear error here) rather than by a TLS alert.
        offer.alpn_protocols = crate::http2::alpn(true);
        let tls = crate::tls::connect(tcp, handshake.host(), std::sync::Arc::new(offer)).await?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            if force {
                return Err(Error::io(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the server did not pick h2 over ALPN (HTTP/2 was forced)",
                )));
            }
            return self
                .run_handshake(MaybeTlsStream::Rustls(Box::new(tls)), handshake)
                .await;
        }
        let peer = tls.get_ref().0.peer_addr().ok();
        if let Some(connected) = self
            .open_h2(MaybeTlsStream::Rustls(Box::new(tls)), &handshake, peer)
            .await?
        {
            return Ok(connected);
        }
        if force {
            return Err(no_extended_connect());
        }
        tracing::debug!("the server speaks h2 without extended CONNECT; falling back to HTTP/1.1");
        let tcp = self.open_tcp(&handshake).await?;
        let tls = crate::tls::connect(tcp, handshake.host(), config).await?;
        self.run_handshake(MaybeTlsStream::Rustls(Box::new(tls)), handshake)
            .await
    }

    /// The extended CONNECT on a new h2 connection over `io`; `None` when the server does
    /// not advertise `SETTINGS_ENABLE_CONNECT_PROTOCOL`.
    #[cfg(feature = "http2")]
    async fn open_h2(
        &self,
        io: MaybeTlsStream,
        handshake: &ClientHandshake,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<Option<(WebSocket<MaybeTlsStream>, http::Response<()>)>, Error> {
        use crate::http2::{connect_h2, H2Connected};
        let connected = connect_h2(
            io,
            handshake,
            &self.http2.1,
            self.config.handshake_timeout,
            peer,
        )
        .await?;
        let H2Connected::WebSocket(stream, response) = connected else {
            return Ok(None);
        };
        let status = Some(response.status());
        let answer = match handshake.validate_connect(&response) {
            Ok(answer) => answer,
            Err(error) => return Err(Error::handshake(error, status, Some(response))),
        };
        self.finish(
            MaybeTlsStream::H2(stream),
            answer,
            response,
            BytesMut::new(),
        )
        .map(Some)
    }

    /// Runs the client handshake for `request` (a URL or an `http::Request`, see
    /// [`IntoClientRequest`]) on a stream you opened yourself (a TLS stream,
    /// a proxy tunnel, an in-memory pipe). The URL's scheme is not acted on: the stream is
    /// used as it is.
    pub async fn connect_on<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        request: impl IntoClientRequest,
    ) -> Result<(WebSocket<S>, http::Response<()>), Error> {
        let handshake = self.handshake_for(request.into_client_request()?)?;
        self.with_timeout(self.run_handshake(stream, handshake))
            .await
    }

    async fn with_timeout<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match self.config.handshake_timeout {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .map_err(|_| Error::timeout("opening handshake"))?,
            None => work.await,
        }
    }

    /// The handshake for `request`, with our offers and headers, then the request's.
    fn handshake_for(&self, request: http::Request<()>) -> Result<ClientHandshake, Error> {
        let invalid = |e: HandshakeError| Error::invalid_input(e.to_string());
        let mut handshake = ClientHandshake::new(request.uri(), rand::random()).map_err(invalid)?;
        handshake = handshake
            .try_protocols(self.protocols.iter().cloned())
            .map_err(invalid)?;
        if let Some(policy) = &self.config.protocol.deflate {
            handshake = handshake
                .try_extensions(policy.client_offer())
                .map_err(invalid)?;
        }
        for (name, value) in &self.headers {
            handshake = handshake.header(name.clone(), value.clone());
        }
        let mut name = None;
        for (key, value) in request.into_parts().0.headers {
            // `HeaderMap`'s iterator names a header once for all its values.
            name = key.or(name);
            if let Some(name) = &name {
                handshake = handshake.header(name.clone(), value);
            }
        }
        Ok(handshake)
    }

    async fn run_handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        handshake: ClientHandshake,
    ) -> Result<(WebSocket<S>, http::Response<()>), Error> {
        let mut head = Vec::with_capacity(256);
        handshake.encode_request(&mut head);
        stream.write_all(&head).await?;
        stream.flush().await?;

        let max = self.config.protocol.max_handshake_size;
        let (response, rest) =
            match read_head(&mut stream, max, ClientHandshake::parse_response).await? {
                Head::Complete { head, rest, .. } => (head, rest),
                Head::Invalid(error) => return Err(Error::handshake(error, None, None)),
                Head::Eof => {
                    return Err(Error::io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the opening handshake",
                    )))
                }
            };

        let status = Some(response.status());
        let answer = match handshake.validate(&response) {
            Ok(answer) => answer,
            Err(error) => {
                let mut response = response;
                if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                    let body = read_refusal_body(&mut stream, rest, &response).await;
                    response.extensions_mut().insert(RefusalBody(body));
                }
                return Err(Error::handshake(error, status, Some(response)));
            }
        };
        // Frames the server sent right behind its 101 belong to the connection.
        self.finish(stream, answer, response, rest)
    }

    /// The connection the server agreed to, over `stream`, the same whichever HTTP
    /// version the handshake ran over; `read` holds bytes already read past the response.
    fn finish<S>(
        &self,
        stream: S,
        answer: switchboard_protocol::handshake::ServerAnswer,
        response: http::Response<()>,
        read: BytesMut,
    ) -> Result<(WebSocket<S>, http::Response<()>), Error> {
        let status = Some(response.status());
        let mut conn = Connection::client(self.config.protocol.clone(), rand::random::<[u8; 4]>);
        if let Some(policy) = &self.config.protocol.deflate {
            // RFC 7692 §7: a response that does not fit our offer fails the connection.
            match policy.client_accept(&answer.extensions) {
                Ok(Some(params)) => conn = conn.with_deflate(params),
                Ok(None) => {}
                Err(error) => return Err(Error::handshake(error, status, Some(response))),
            }
        }
        let ws = WebSocket::from_connection(stream, conn, &self.config)
            .with_read_buffer(read)
            .with_protocol(answer.protocol);
        Ok((ws, response))
    }
}

/// Forced HTTP/2 against a server that does not allow WebSockets over it.
#[cfg(feature = "http2")]
fn no_extended_connect() -> Error {
    Error::io(io::Error::new(
        io::ErrorKind::Unsupported,
        "the server does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (HTTP/2 was forced)",
    ))
}

/// Reads what the server sends after a refusing head: what `Content-Length` announces (or
/// until it closes), bounded in size and time. Best effort: a slow or silent server only
/// shortens it.
async fn read_refusal_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: BytesMut,
    response: &http::Response<()>,
) -> bytes::Bytes {
    let want = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(REFUSAL_BODY_MAX)
        .min(REFUSAL_BODY_MAX);
    let _ = tokio::time::timeout(REFUSAL_BODY_WAIT, async {
        while buf.len() < want {
            buf.reserve(want - buf.len());
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    buf.truncate(want);
    buf.freeze()
}
