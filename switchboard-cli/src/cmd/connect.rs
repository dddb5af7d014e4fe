//! `switchboard connect`: an interactive client, like wscat.
//!
//! In a pipe (stdin or stdout not a terminal), each line of stdin is sent as a text message,
//! each text message received is printed to stdout as one line and a binary message as
//! `<binary N bytes>`; nothing else goes to stdout. Status goes to stderr: `connected: …`
//! after the handshake and `closed: CODE REASON` at the end. End of input closes with 1000
//! and waits for the server's close; messages that arrive meanwhile are still printed.
//!
//! On a terminal (stdin and stdout both one), a line editor shows a `> ` prompt; a sent line
//! stays on screen after it, and what arrives is printed above the prompt as `< TEXT` (a
//! binary message as its size and first bytes in hex), so typing is never interrupted.
//! Ctrl-C or Ctrl-D closes with 1000 and waits for the server's close ([`terminal`]).
//!
//! In both modes, Ctrl-C (SIGINT) closes with 1000 and a close handshake; a second one
//! while waiting for the server's close quits at once. `--slash` makes lines starting with
//! `/` commands (`/ping [DATA]`, `/close [CODE [REASON]]`, `/help`), `--show-ping` shows
//! the pings and pongs the server sends.
//!
//! Exit status: 0 after a clean close (whatever its code), 1 if the handshake failed
//! (`handshake failed: HTTP STATUS REASON`), the connection broke or the server broke the
//! protocol, 130 when a second Ctrl-C cut the close handshake short.

#[cfg(unix)]
mod terminal;

use anyhow::Context;
use std::process::ExitCode;
use switchboard::http2::Http2Mode;
use switchboard::proxy::Proxy;
use switchboard::{
    Client, CloseCode, CloseFrame, ErrorKind, Message, Received, WebSocket, WebSocketConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What `--help` says after the options: the two modes and the commands.
const MODES: &str = "\
On a terminal: a `> ` prompt with line editing and history; what arrives is printed above
it as `< MESSAGE` (a binary message as `< <binary N bytes>` and its first bytes in hex), so
a half-typed line is never broken up. Ctrl-C or Ctrl-D closes the connection with 1000
and waits for the server's close (a second Ctrl-C quits at once). Empty lines send nothing.

In a pipe (stdin or stdout redirected): each stdin line is one text message, each message
received one stdout line (a binary one as `<binary N bytes>`), status on stderr; end of
input, or Ctrl-C, closes with 1000.

At the end: `closed: CODE` or `closed: CODE REASON` (the server's close) on stderr; exit
status 0 after a clean close.

With --slash, lines starting with / are commands:
  /ping [DATA]            send a ping (shown with its pong when --show-ping is on)
  /close [CODE [REASON]]  close with CODE (default 1000) and REASON
  /help                   list the commands
  //TEXT                  send /TEXT";

/// Options of `switchboard connect`.
#[derive(Debug, clap::Args)]
#[command(after_help = MODES)]
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
    /// Lines starting with / are commands: /ping [DATA], /close [CODE [REASON]], /help
    /// (//TEXT sends /TEXT).
    #[arg(long)]
    slash: bool,
    /// Show the pings and pongs the server sends (on a terminal `< ping: DATA`, in a pipe
    /// `ping: DATA` on stderr).
    #[arg(long, short = 'P')]
    show_ping: bool,
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

    let (ws, _response) = match builder.connect(&args.url).await {
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

    let options = Options {
        slash: args.slash,
        show_ping: args.show_ping,
    };
    let interrupts = Interrupts::catch()?;
    let (inputs, received) = mpsc::unbounded_channel();
    #[cfg(unix)]
    if use_terminal() {
        // Before the editor draws its prompt: from then on it owns the terminal.
        let commands = if args.slash {
            "; /help lists the commands"
        } else {
            ""
        };
        eprintln!("type a message and press Enter; Ctrl-C or Ctrl-D closes{commands}");
        match terminal::Terminal::start(inputs.clone()) {
            Ok(terminal) => {
                let screen = Screen::Terminal(terminal);
                return session(ws, received, screen, interrupts, options).await;
            }
            Err(error) => {
                eprintln!("warning: no line editor ({error}); reading lines as in a pipe")
            }
        }
    }
    tokio::spawn(read_lines(inputs));
    let screen = Screen::Pipe(tokio::io::stdout());
    session(ws, received, screen, interrupts, options).await
}

/// Whether to run the line editor: stdin and stdout are both a terminal.
#[cfg(unix)]
fn use_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// What the session gets from the user.
#[derive(Debug)]
enum Input {
    /// A line (without its line ending).
    Line(String),
    /// End of input: end of file, or Ctrl-D on a terminal.
    End,
    /// Ctrl-C on a terminal, typed while editing.
    Interrupt,
}

/// The options that shape a session.
#[derive(Debug, Clone, Copy)]
struct Options {
    slash: bool,
    show_ping: bool,
}

/// Reads stdin line by line (pipe mode); ends with [`Input::End`] at end of input or on
/// unreadable input.
async fn read_lines(inputs: mpsc::UnboundedSender<Input>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if inputs.send(Input::Line(line)).is_err() {
            return;
        }
    }
    let _ = inputs.send(Input::End);
}

/// SIGINT (Ctrl-C), caught for the whole session so that it closes the connection instead
/// of killing the process.
struct Interrupts {
    received: mpsc::UnboundedReceiver<()>,
    /// Interrupts before this are our own (see `terminal`), not the user's.
    ignore_until: Option<Instant>,
}

impl Interrupts {
    fn catch() -> std::io::Result<Interrupts> {
        let (tx, received) = mpsc::unbounded_channel();
        // Registered now, not on first poll: from here on SIGINT never kills the process.
        #[cfg(unix)]
        {
            let mut signal =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            tokio::spawn(
                async move { while signal.recv().await.is_some() && tx.send(()).is_ok() {} },
            );
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() && tx.send(()).is_ok() {}
        });
        Ok(Interrupts {
            received,
            ignore_until: None,
        })
    }

    /// The next Ctrl-C from the user.
    async fn recv(&mut self) {
        loop {
            if self.received.recv().await.is_none() {
                return std::future::pending().await;
            }
            match self.ignore_until {
                Some(until) if Instant::now() < until => continue,
                _ => return,
            }
        }
    }
}

/// Where a session's output goes.
enum Screen {
    /// Messages on stdout, exactly as they came; notes on stderr.
    Pipe(tokio::io::Stdout),
    /// Everything through the line editor, above its prompt.
    #[cfg(unix)]
    Terminal(terminal::Terminal),
}

impl Screen {
    async fn message(&mut self, message: &Message) -> std::io::Result<()> {
        match self {
            Screen::Pipe(stdout) => {
                match message {
                    Message::Text(text) => {
                        stdout.write_all(text.as_bytes()).await?;
                        stdout.write_all(b"\n").await?;
                    }
                    Message::Binary(bytes) => {
                        stdout
                            .write_all(format!("<binary {} bytes>\n", bytes.len()).as_bytes())
                            .await?;
                    }
                }
                stdout.flush().await
            }
            #[cfg(unix)]
            Screen::Terminal(terminal) => {
                terminal.show(format!("< {}\n", shown(message)));
                Ok(())
            }
        }
    }

    /// A line that is not a message: a ping or pong, a command's answer.
    fn note(&mut self, text: &str) {
        match self {
            Screen::Pipe(_) => eprintln!("{text}"),
            #[cfg(unix)]
            Screen::Terminal(terminal) => terminal.show(format!("{text}\n")),
        }
    }

    /// No more input will be read: on a terminal, the editor gives the terminal back.
    async fn stop_input(&mut self, interrupts: &mut Interrupts) {
        #[cfg(unix)]
        if let Screen::Terminal(terminal) = self {
            if let Some(until) = terminal.stop_input().await {
                interrupts.ignore_until = Some(until.into());
            }
        }
        let _ = interrupts;
    }

    /// Everything shown so far is on the screen, and the terminal is back to normal.
    async fn finish(self) {
        match self {
            Screen::Pipe(mut stdout) => {
                let _ = stdout.flush().await;
            }
            #[cfg(unix)]
            Screen::Terminal(terminal) => {
                terminal.finish().await;
            }
        }
    }

    /// `< ` on a terminal, nothing in a pipe: the mark of what the server sent.
    fn incoming(&self) -> &'static str {
        match self {
            Screen::Pipe(_) => "",
            #[cfg(unix)]
            Screen::Terminal(_) => "< ",
        }
    }
}

/// How the session ended, when not with a clean close.
enum Ending {
    /// The peer closed, or answered our close: report its close.
    Closed,
    /// The connection failed.
    Failed(switchboard::Error),
    /// A second Ctrl-C while waiting for the peer's close.
    Cut,
}

/// Relays inputs and received messages until the connection is over, then reports how it
/// ended.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocket<S>,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    mut screen: Screen,
    mut interrupts: Interrupts,
    options: Options,
) -> anyhow::Result<ExitCode> {
    let mut closing = false;
    let ending = loop {
        tokio::select! {
            received = ws.recv_with_control() => match received {
                Some(Ok(Received::Message(message))) => screen.message(&message).await?,
                Some(Ok(Received::Ping(payload))) if options.show_ping => {
                    let note = format!("{}ping{}", screen.incoming(), shown_payload(&payload));
                    screen.note(&note);
                }
                Some(Ok(Received::Pong(payload))) if options.show_ping => {
                    let note = format!("{}pong{}", screen.incoming(), shown_payload(&payload));
                    screen.note(&note);
                }
                Some(Ok(Received::Ping(_) | Received::Pong(_))) => {}
                Some(Err(error)) => break Ending::Failed(error),
                None => break Ending::Closed,
            },
            input = inputs.recv(), if !closing => {
                let close = match input {
                    Some(Input::Line(line)) => match Command::parse(line, options.slash) {
                        Command::Send(text) => {
                            if let Err(error) = ws.send(text).await {
                                break Ending::Failed(error);
                            }
                            None
                        }
                        Command::Ping(data) => {
                            match ws.ping(data.into_bytes()).await {
                                Err(error) if error.kind() == ErrorKind::Protocol => {
                                    screen.note(&format!("error: /ping: {error}"));
                                }
                                Err(error) => break Ending::Failed(error),
                                Ok(()) => {}
                            }
                            None
                        }
                        Command::Close(frame) => Some(frame),
                        Command::Say(text) => {
                            screen.note(&text);
                            None
                        }
                    },
                    Some(Input::End | Input::Interrupt) | None => {
                        Some(CloseFrame::new(CloseCode::NORMAL, ""))
                    }
                };
                if let Some(frame) = close {
                    closing = true;
                    screen.stop_input(&mut interrupts).await;
                    if let Err(error) = ws.send_close(frame.code, &frame.reason).await {
                        break Ending::Failed(error);
                    }
                }
            },
            () = interrupts.recv() => {
                // The terminal echoed `^C` where the cursor was: what follows starts a line.
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    eprintln!();
                }
                if closing {
                    break Ending::Cut;
                }
                closing = true;
                screen.stop_input(&mut interrupts).await;
                if let Err(error) = ws.send_close(CloseCode::NORMAL, "").await {
                    break Ending::Failed(error);
                }
            }
        }
    };
    screen.finish().await;
    Ok(match ending {
        Ending::Closed if report_close(&ws) => ExitCode::SUCCESS,
        Ending::Closed => ExitCode::FAILURE,
        Ending::Failed(error) => {
            eprintln!("error: {error}");
            report_close(&ws);
            ExitCode::FAILURE
        }
        Ending::Cut => {
            eprintln!("closed: not waiting for the server's close");
            ExitCode::from(130)
        }
    })
}

/// Prints the [`close_line`] to stderr; returns whether the close was clean.
fn report_close<S>(ws: &WebSocket<S>) -> bool {
    match ws.close_info() {
        Some(info) => {
            eprintln!("{}", close_line(info.code, &info.reason));
            info.clean
        }
        None => false,
    }
}

/// The `closed: …` line: `closed: CODE`, or `closed: CODE REASON` with a reason. A reason
/// that would not read as one word group (control characters, or spaces at its ends) is
/// quoted, so the line never ends in invisible characters.
fn close_line(code: CloseCode, reason: &str) -> String {
    if reason.is_empty() {
        format!("closed: {code}")
    } else if reason.chars().any(char::is_control) || reason.trim() != reason {
        format!("closed: {code} {reason:?}")
    } else {
        format!("closed: {code} {reason}")
    }
}

/// One input line, read as what to do.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// Send this text message.
    Send(String),
    /// `/ping [DATA]`.
    Ping(String),
    /// `/close [CODE [REASON]]`.
    Close(CloseFrame),
    /// Tell the user this (help, or what was wrong with a command); send nothing.
    Say(String),
}

/// The commands, for `/help` and an unknown command.
const COMMANDS: &str = "commands: /ping [DATA], /close [CODE [REASON]], /help; //TEXT sends /TEXT";

impl Command {
    /// Reads `line`; without `slash`, every line is a message.
    fn parse(line: String, slash: bool) -> Command {
        if !slash || !line.starts_with('/') {
            return Command::Send(line);
        }
        if line.starts_with("//") {
            return Command::Send(line[1..].to_owned());
        }
        let (name, rest) = line.split_once(' ').unwrap_or((&line, ""));
        match name {
            "/ping" => {
                if rest.len() > 125 {
                    Command::Say(format!(
                        "error: /ping: {} bytes of data, a ping carries at most 125",
                        rest.len()
                    ))
                } else {
                    Command::Ping(rest.to_owned())
                }
            }
            "/close" => {
                let rest = rest.trim_start();
                let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                if code.is_empty() {
                    return Command::Close(CloseFrame::new(CloseCode::NORMAL, ""));
                }
                match code.parse::<u16>().map(CloseCode::from) {
                    Ok(code) if code.is_valid_on_wire() => {
                        if reason.len() > CloseFrame::MAX_REASON_LEN {
                            Command::Say(format!(
                                "error: /close: a reason of {} bytes, at most {} fit",
                                reason.len(),
                                CloseFrame::MAX_REASON_LEN
                            ))
                        } else {
                            Command::Close(CloseFrame::new(code, reason.to_owned()))
                        }
                    }
                    _ => Command::Say(format!(
                        "error: /close {code}: not a code to send (1000-1003, 1007-1014, \
                         3000-4999)"
                    )),
                }
            }
            "/help" => Command::Say(COMMANDS.to_owned()),
            _ => Command::Say(format!("error: unknown command {name}; {COMMANDS}")),
        }
    }
}

/// How many bytes of a binary message a terminal shows (in hex).
const BINARY_SHOWN: usize = 32;

/// A received message as a terminal shows it after `< `: text with control characters
/// escaped (a server's escape sequences cannot take over the terminal) and each further
/// line indented; binary as its size and first bytes in hex.
fn shown(message: &Message) -> String {
    match message {
        Message::Text(text) => text
            .split('\n')
            .map(escape_controls)
            .collect::<Vec<_>>()
            .join("\n  "),
        Message::Binary(bytes) => format!("<binary {} bytes>{}", bytes.len(), hex(bytes)),
    }
}

/// ` 00 01 …` for the first [`BINARY_SHOWN`] bytes, `…` after them if there are more.
fn hex(bytes: &[u8]) -> String {
    let mut out: String = bytes
        .iter()
        .take(BINARY_SHOWN)
        .map(|b| format!(" {b:02x}"))
        .collect();
    if bytes.len() > BINARY_SHOWN {
        out.push_str(" …");
    }
    out
}

/// `text` with control characters other than tab written as `\u{…}` escapes.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A ping's or pong's payload after its name: nothing if empty, `: TEXT` if it is printable
/// UTF-8, else `:` and hex.
fn shown_payload(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        _ if payload.is_empty() => String::new(),
        Ok(text) if !text.chars().any(char::is_control) => format!(": {text}"),
        _ => format!(":{}", hex(payload)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closed_line_has_no_trailing_space_with_or_without_a_reason() {
        assert_eq!(close_line(CloseCode::NORMAL, ""), "closed: 1000");
        assert_eq!(
            close_line(CloseCode::from(4000), "bye now"),
            "closed: 4000 bye now"
        );
        assert_eq!(close_line(CloseCode::NORMAL, " "), "closed: 1000 \" \"");
        assert_eq!(
            close_line(CloseCode::NORMAL, "a\nb"),
            "closed: 1000 \"a\\nb\""
        );
        assert_eq!(
            close_line(CloseCode::NORMAL, "done "),
            "closed: 1000 \"done \""
        );
    }

    fn parse(line: &str) -> Command {
        Command::parse(line.to_owned(), true)
    }

    #[test]
    fn slash_commands() {
        assert_eq!(
            Command::parse("/ping".into(), false),
            Command::Send("/ping".into())
        );
        assert_eq!(parse("hello"), Command::Send("hello".into()));
        assert_eq!(parse("//ping"), Command::Send("/ping".into()));
        assert_eq!(parse("/ping"), Command::Ping(String::new()));
        assert_eq!(parse("/ping a b"), Command::Ping("a b".into()));
        assert!(matches!(
            parse(&format!("/ping {}", "x".repeat(126))),
            Command::Say(_)
        ));
        assert_eq!(
            parse("/close"),
            Command::Close(CloseFrame::new(CloseCode::NORMAL, ""))
        );
        assert_eq!(
            parse("/close 4000 see you later"),
            Command::Close(CloseFrame::new(CloseCode::from(4000), "see you later"))
        );
        for bad in ["/close 1005", "/close 99", "/close x", "/close 70000"] {
            match parse(bad) {
                Command::Say(text) => assert!(text.contains("not a code"), "{bad}: {text}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            parse(&format!("/close 1000 {}", "r".repeat(124))),
            Command::Say(_)
        ));
        match parse("/nope") {
            Command::Say(text) => assert!(text.contains("unknown command /nope"), "{text}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse("/help"), Command::Say(t) if t.contains("/close [CODE [REASON]]")));
    }

    #[test]
    fn what_a_terminal_shows() {
        assert_eq!(shown(&Message::Text("hi".into())), "hi");
        assert_eq!(shown(&Message::Text("a\nb".into())), "a\n  b");
        assert_eq!(shown(&Message::Text("\x1b[2J".into())), "\\u{1b}[2J");
        assert_eq!(
            shown(&Message::Binary(vec![0u8, 1, 255].into())),
            "<binary 3 bytes> 00 01 ff"
        );
        let long = shown(&Message::Binary(vec![7u8; 40].into()));
        assert!(long.starts_with("<binary 40 bytes> 07 07"), "{long}");
        assert!(long.ends_with(" 07 …"), "{long}");
        assert_eq!(long.matches(" 07").count(), BINARY_SHOWN);
        assert_eq!(shown_payload(b""), "");
        assert_eq!(shown_payload(b"abc"), ": abc");
        assert_eq!(shown_payload(&[0, 200]), ": 00 c8");
    }
}
