//! `switchboard connect`: an interactive client, like wscat.
//!
//! Each line of stdin is sent as a text message. Each text message received is printed to
//! stdout as one line; a binary message is printed as `<binary N bytes>`. Status goes to
//! stderr: `connected: …` after the handshake and `closed: CODE REASON` at the end. End of
//! input closes with 1000 and waits for the server's close; messages that arrive meanwhile
//! are still printed.
//!
//! Exit status: 0 after a clean close (whatever its code), 1 if the handshake failed
//! (`handshake failed: HTTP STATUS REASON`), the connection broke or the server broke the
//! protocol.

use anyhow::Context;
use std::process::ExitCode;
use switchboard::http2::Http2Mode;
use switchboard::proxy::Proxy;
use switchboard::{Client, CloseCode, ErrorKind, Message, WebSocketConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Options of `switchboard connect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The server URL, e.g. ws://127.0.0.1:9001/chat.
    url: String,
    /// Offer this subprotocol (repeatable, most preferred first).
    #[arg(long = "subprotocol", short = 's', value_name = "PROTOCOL")]
    subprotocols: Vec<String>,
    /// Add a request header, as 'Name: value' (repeatable).
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'")]
    headers: Vec<String>,
    /// Do not offer permessage-deflate (RFC 7692).
    #[arg(long)]
    no_compression: bool,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    max_message_size: usize,
    /// For wss://: also trust the certificates in this PEM file (repeatable): a CA, or the
    /// server's own self-signed certificate, which is then accepted exactly as given. The
    /// webpki roots are always trusted.
    #[arg(long = "ca", value_name = "FILE")]
    ca: Vec<std::path::PathBuf>,
    /// For wss://: accept any server certificate (encrypted, but not authenticated: for
    /// tests only; prefer --ca with the server's certificate).
    #[arg(long, short = 'k', conflicts_with = "ca")]
    insecure: bool,
    /// Connect through this HTTP proxy (CONNECT), e.g. http://user:pass@proxy:3128. By
    /// default HTTPS_PROXY (wss://), HTTP_PROXY (ws://), ALL_PROXY and NO_PROXY are used.
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    proxy: Option<String>,
    /// Connect directly, ignoring the proxy environment variables.
    #[arg(long)]
    no_proxy: bool,
    /// Open the WebSocket over HTTP/2 (RFC 8441 extended CONNECT) or fail; over ws:// this
    /// is h2 with prior knowledge. Without it, HTTP/1.1.
    #[arg(long, conflicts_with = "http2_auto")]
    http2: bool,
    /// Use HTTP/2 when the wss:// server offers it, else HTTP/1.1.
    #[arg(long)]
    http2_auto: bool,
}

/// Connects and relays stdin and stdout until the connection closes.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = WebSocketConfig::default()
        .max_message_size(args.max_message_size)
        .max_frame_size(args.max_message_size)
        .compression(!args.no_compression);
    let http2 = if args.http2 {
        Http2Mode::Force
    } else if args.http2_auto {
        Http2Mode::Auto
    } else {
        Http2Mode::Never
    };
    let mut builder = Client::builder()
        .config(config)
        .protocols(args.subprotocols)
        .http2(http2);
    builder = match &args.proxy {
        Some(url) => builder.proxy(Proxy::parse(url)?),
        None => builder.proxy_from_env(!args.no_proxy),
    };
    if !args.ca.is_empty() {
        builder = builder.tls_config(switchboard::tls::client_config_pinning(&args.ca)?);
    }
    if args.insecure {
        eprintln!(
            "warning: --insecure: the server's certificate is not checked; anyone on the path \
             can read and change this connection"
        );
        builder = builder.tls_config(switchboard::tls::insecure_client_config());
    }
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("header {header:?} is not 'Name: value'"))?;
        builder = builder.header(name.trim(), value.trim());
    }

    let (mut ws, _response) = match builder.connect(&args.url).await {
        Ok(connected) => connected,
        Err(error) if error.kind() == ErrorKind::Handshake => {
            match error.status().filter(|s| s.as_u16() != 101) {
                Some(status) => {
                    // The server's own words (a hub answers `{"error":{"message":…}}`).
                    let body = error
                        .response()
                        .and_then(|r| r.extensions().get::<switchboard::RefusalBody>())
                        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
                        .filter(|b| !b.is_empty());
                    eprintln!(
                        "handshake failed: HTTP {} {}{}",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or(""),
                        body.map(|b| format!(": {b}")).unwrap_or_default()
                    );
                }
                None => eprintln!("{error}"),
            }
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => {
            // The library keeps the I/O error whole; a TLS failure is inside it.
            if let Some(why) = error
                .io_error()
                .and_then(|io| switchboard::tls::explain(io))
            {
                eprintln!("error: cannot connect to {}: {why}", args.url);
                return Ok(ExitCode::FAILURE);
            }
            return Err(error).with_context(|| format!("cannot connect to {}", args.url));
        }
    };
    eprintln!(
        "connected: {} (subprotocol: {}, compression: {}, {:?})",
        args.url,
        ws.protocol().unwrap_or("none"),
        if ws.is_compressed() { "on" } else { "off" },
        ws.get_ref().http_version()
    );

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    let mut input_open = true;
    loop {
        tokio::select! {
            received = ws.recv() => match received {
                Some(Ok(Message::Text(text))) => {
                    stdout.write_all(text.as_bytes()).await?;
                    stdout.write_all(b"\n").await?;
                    stdout.flush().await?;
                }
                Some(Ok(Message::Binary(bytes))) => {
                    stdout.write_all(format!("<binary {} bytes>\n", bytes.len()).as_bytes()).await?;
                    stdout.flush().await?;
                }
                Some(Err(error)) => {
                    eprintln!("error: {error}");
                    report_close(&ws);
                    return Ok(ExitCode::FAILURE);
                }
                None => break,
            },
            line = lines.next_line(), if input_open => match line {
                Ok(Some(line)) => {
                    if let Err(error) = ws.send(line).await {
                        eprintln!("error: {error}");
                        report_close(&ws);
                        return Ok(ExitCode::FAILURE);
                    }
                }
                // End of input (or unreadable input): close and wait for the server's close.
                Ok(None) | Err(_) => {
                    input_open = false;
                    ws.send_close(CloseCode::NORMAL, "").await?;
                }
            },
        }
    }
    let clean = report_close(&ws);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints `closed: CODE REASON` (or `closed: CODE`, no trailing space, without a reason) to
/// stderr; returns whether the close was clean.
fn report_close<S>(ws: &switchboard::WebSocket<S>) -> bool {
    match ws.close_info() {
        Some(info) => {
            if info.reason.is_empty() {
                eprintln!("closed: {}", info.code);
            } else {
                eprintln!("closed: {} {}", info.code, info.reason);
            }
            info.clean
        }
        None => false,
    }
}
