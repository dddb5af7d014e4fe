//! fastwebsockets echo server on one tokio current-thread runtime, written like its own
//! `echo_server` example: `FragmentCollector`, `read_frame`, `write_frame`, each connection
//! task `unconstrained`. The handshake is either hyper 1 with fastwebsockets' `upgrade`
//! feature (default, the documented path) or, with `--raw`, done by hand on the `TcpStream`
//! so frames skip hyper's `Upgraded` wrapper.

use clap::Parser as _;
use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use switchboard_bench::server::{bind, current_thread_runtime, EchoArgs};
use switchboard_loadgen::wire;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    echo: EchoArgs,
    /// Do the handshake by hand instead of through hyper.
    #[arg(long)]
    raw: bool,
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(ws: WebSocket<S>) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn upgrade(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = fastwebsockets::upgrade::upgrade(&mut req)?;
    tokio::task::spawn(async move {
        if let Ok(ws) = fut.await {
            let _ = tokio::task::unconstrained(echo(ws)).await;
        }
    });
    Ok(response)
}

async fn raw_handshake(mut stream: TcpStream) -> std::io::Result<TcpStream> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        match wire::server_response(&buf) {
            Ok(Some((answer, _))) => {
                stream.write_all(&answer).await?;
                return Ok(stream);
            }
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    current_thread_runtime()?.block_on(async move {
        let listener = bind(args.echo.listen).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            if args.raw {
                tokio::spawn(async move {
                    if let Ok(stream) = raw_handshake(stream).await {
                        let ws = WebSocket::after_handshake(stream, Role::Server);
                        let _ = tokio::task::unconstrained(echo(ws)).await;
                    }
                });
            } else {
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = http1::Builder::new()
                        .serve_connection(io, service_fn(upgrade))
                        .with_upgrades()
                        .await;
                });
            }
        }
    })
}
