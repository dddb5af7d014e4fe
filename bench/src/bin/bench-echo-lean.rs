//! The "lean engine" experiment (issue 16): the sans-I/O `Connection` of
//! `switchboard-protocol` driven by a plain `mio` (epoll) loop on one thread, no tokio, no
//! tasks, no wakers. A prototype to measure how many instructions per message the protocol
//! core costs once the async runtime is taken away; not a product (no TLS, no timeouts, no
//! limits, no backpressure policy beyond "stop reading while output is stuck").
//!
//! The loop, per readiness event: read until the socket is drained (a read that does not
//! fill the buffer means it is, so no extra read to see `EAGAIN`), parse every event the
//! bytes complete, queue the echoes, write what is queued in one `write`/`writev`, and ask
//! for writability only when the kernel did not take it all. One read buffer serves every
//! connection: bytes of a frame that is not complete are moved into that connection's own
//! buffer, so an idle connection holds no buffer at all.

use bytes::BytesMut;
use clap::Parser as _;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::io::{self, IoSlice, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use switchboard_bench::server::EchoArgs;
use switchboard_protocol::handshake::{encode_response, parse_request, validate_request};
use switchboard_protocol::{Config, Connection, Event};

const LISTENER: Token = Token(usize::MAX);
/// The shared read buffer's size: a read that fills it may have left bytes behind.
const READ_CHUNK: usize = 64 << 10;
const MAX_HANDSHAKE: usize = 8 << 10;

enum Phase {
    /// Waiting for the whole request head.
    Handshake(Vec<u8>),
    Open(Box<Connection>),
}

struct Conn {
    stream: TcpStream,
    phase: Phase,
    /// Bytes of an incomplete frame, kept between events (empty, without capacity, when the
    /// last read ended on a frame boundary).
    pending: BytesMut,
    /// Whether WRITABLE interest is registered (output the kernel did not take).
    want_write: bool,
}

fn main() -> io::Result<()> {
    let args = EchoArgs::parse();
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(args.listen)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);

    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut read_buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if let Err(error) = poll.poll(&mut events, None) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut conns, &mut free)?;
                continue;
            }
            let index = event.token().0;
            let Some(conn) = conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            let keep = match &conn.phase {
                Phase::Handshake(_) => handshake(conn),
                Phase::Open(_) => serve(conn, &mut read_buf),
            };
            let keep = keep.unwrap_or(false) && update_interest(conn, &poll, index).is_ok();
            if !keep {
                if let Some(mut conn) = conns[index].take() {
                    let _ = poll.registry().deregister(&mut conn.stream);
                }
                free.push(index);
            }
        }
    }
}

fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
) -> io::Result<()> {
    loop {
        let (mut stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.set_nodelay(true)?;
        let index = free.pop().unwrap_or_else(|| {
            conns.push(None);
            conns.len() - 1
        });
        poll.registry()
            .register(&mut stream, Token(index), Interest::READABLE)?;
        conns[index] = Some(Conn {
            stream,
            phase: Phase::Handshake(Vec::new()),
            pending: BytesMut::new(),
            want_write: false,
        });
    }
}

/// Reads the request head, answers it, and switches to frames. `Ok(false)`: drop it.
fn handshake(conn: &mut Conn) -> io::Result<bool> {
    let Phase::Handshake(head) = &mut conn.phase else {
        unreachable!("called in the handshake phase")
    };
    let mut chunk = [0u8; 4096];
    loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let (request, consumed) = match parse_request(head, MAX_HANDSHAKE) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(true),
        Err(rejection) => {
            let _ = conn.stream.write_all(&rejection.to_bytes());
            return Ok(false);
        }
    };
    let offer = match validate_request(&request) {
        Ok(offer) => offer,
        Err(rejection) => {
            let _ = conn.stream.write_all(&rejection.to_bytes());
            return Ok(false);
        }
    };
    let mut response = Vec::new();
    encode_response(&offer.response(None, None), &mut response);
    // 200-odd bytes into an empty socket buffer: one write takes it.
    conn.stream.write_all(&response)?;
    conn.pending = BytesMut::from(&head[consumed..]);
    conn.phase = Phase::Open(Box::new(Connection::server(Config::default())));
    let mut scratch = BytesMut::new();
    // Frames pipelined behind the request.
    serve(conn, &mut scratch)
}

/// Reads, parses, echoes and writes. `Ok(false)`: the connection is over.
fn serve(conn: &mut Conn, read_buf: &mut BytesMut) -> io::Result<bool> {
    let Phase::Open(ws) = &mut conn.phase else {
        unreachable!("called once open")
    };
    // Continue an incomplete frame in the connection's own buffer; otherwise read into the
    // shared one, which then holds only this event's bytes.
    let shared = conn.pending.is_empty();
    let buf = if shared { read_buf } else { &mut conn.pending };
    let mut eof = false;
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let room = buf.capacity() - buf.len();
        match read_into(&mut conn.stream, buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            // Short read: the socket is drained (edge-triggered: new bytes raise a new event).
            Ok(n) if n < room => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(false),
        }
    }
    loop {
        match ws.poll_event(buf) {
            Ok(Some(Event::Message(message))) => {
                // The echo; fails only once our close is queued, when there is nothing to do.
                let _ = ws.send(message);
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => break,
        }
    }
    // Keep the rest of a frame with its connection; the shared buffer stays shared.
    let rest = (shared && !buf.is_empty()).then(|| buf.split());
    if let Some(rest) = rest {
        conn.pending = rest;
    }
    if !write_out(&mut conn.stream, ws)? {
        return Ok(false);
    }
    if eof {
        ws.handle_eof();
    }
    Ok(!ws.should_close_transport())
}

/// One `recv` into the spare capacity of `buf`, which is not initialised: zeroing it first
/// would cost more than the echo of a small message, and `recv(2)` only writes, through a
/// raw pointer, so nothing uninitialised is ever read or referenced.
fn read_into(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: `spare` is valid for writes of `spare.len()` bytes and the descriptor is
    // the stream's own, open for as long as `stream` is borrowed.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            spare.len(),
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: `recv` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Writes queued output until done or the socket is full. `Ok(false)`: the peer is gone.
fn write_out(stream: &mut TcpStream, ws: &mut Connection) -> io::Result<bool> {
    while ws.buffered_amount() > 0 {
        let written = if let Some(bytes) = ws.contiguous_output() {
            stream.write(bytes)
        } else {
            let mut slices = [IoSlice::new(&[]); 16];
            let count = ws.output_chunks(&mut slices);
            stream.write_vectored(&slices[..count])
        };
        match written {
            Ok(0) => return Ok(false),
            Ok(n) => ws.advance_output(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(false),
        }
    }
    Ok(true)
}

/// Asks for writability while output is stuck, and stops asking once it is written.
fn update_interest(conn: &mut Conn, poll: &Poll, index: usize) -> io::Result<()> {
    let stuck = matches!(&conn.phase, Phase::Open(ws) if ws.buffered_amount() > 0);
    if stuck != conn.want_write {
        let interest = if stuck {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        poll.registry()
            .reregister(&mut conn.stream, Token(index), interest)?;
        conn.want_write = stuck;
    }
    Ok(())
}
