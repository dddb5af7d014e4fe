//! A decompression bomb against a real server: about 1 MiB on the wire that inflates to
//! 1 GiB. The server must refuse it with 1009 at its message limit without allocating the
//! inflated size, and keep serving everyone else meanwhile.

use std::net::SocketAddr;
use std::time::Duration;
use switchboard::protocol::deflate::{Deflate, DeflateConfig, DeflateParams};
use switchboard::protocol::frame::{FrameHeader, OpCode, Role};
use switchboard::protocol::handshake::ClientHandshake;
use switchboard::{Client, Message, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: usize = 1 << 20;
const INFLATED: usize = 1 << 30;

async fn echo_server() -> SocketAddr {
    let config = switchboard::WebSocketConfig::default()
        .deflate(Some(DeflateConfig::default()))
        .max_message_size(LIMIT);
    let server = Server::bind("127.0.0.1:0").await.unwrap().config(config);
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(|mut ws| async move {
        while let Some(Ok(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }));
    addr
}

/// The compressed form of `INFLATED` zero bytes, as one deflate stream. With context
/// takeover a compressor fed more zeros reaches a steady state whose output repeats, so the
/// bomb is built from one chunk repeated instead of compressing a gigabyte here
/// (`the_bomb_is_real` checks that a small one inflates to exactly what it claims).
fn bomb(inflated: usize) -> Vec<u8> {
    let params = params();
    let config = DeflateConfig {
        level: 9,
        ..DeflateConfig::default()
    };
    let mut deflate = Deflate::new(Role::Client, params, &config);
    let chunk = vec![0u8; 1 << 20];
    let mut out = bytes::BytesMut::new();
    deflate.compress(&chunk, &mut out);
    let first = out.split().to_vec();
    deflate.compress(&chunk, &mut out);
    let steady = out.split().to_vec();
    deflate.compress(&chunk, &mut out);
    assert_eq!(
        out.to_vec(),
        steady,
        "the compressor reached a steady state"
    );
    // `compress` strips each message's `00 00 ff ff` sync-flush tail (RFC 7692 §7.2.1);
    // between chunks of one stream it must stay.
    let mut bomb = first;
    for _ in 1..inflated / chunk.len() {
        bomb.extend_from_slice(&[0, 0, 0xff, 0xff]);
        bomb.extend_from_slice(&steady);
    }
    bomb
}

fn params() -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    }
}

#[test]
fn the_bomb_is_real() {
    let small = bomb(8 << 20);
    let mut inflater = Deflate::new(Role::Server, params(), &DeflateConfig::default());
    let mut out = bytes::BytesMut::new();
    inflater
        .decompress(&small, true, 16 << 20, &mut out)
        .unwrap();
    assert_eq!(out.len(), 8 << 20);
    assert!(out.iter().all(|&b| b == 0));
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_bomb_is_refused_with_1009_and_others_are_served() {
    let addr = echo_server().await;
    let bomb = bomb(INFLATED);
    assert!(
        bomb.len() < 2 << 20,
        "the bomb is {} bytes on the wire",
        bomb.len()
    );

    // A well-behaved client, connected before the bomb and used while it goes off.
    let (mut bystander, _) = Client::builder()
        .config(switchboard::WebSocketConfig::default().compression(true))
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();

    // The attacker: a raw handshake offering permessage-deflate, then the bomb as one
    // compressed binary message in 64 KiB frames.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let uri = format!("ws://{addr}/").parse().unwrap();
    let handshake = ClientHandshake::new(&uri, *b"0123456789abcdef")
        .unwrap()
        .extensions("permessage-deflate");
    let mut request = Vec::new();
    handshake.encode_request(&mut request);
    tcp.write_all(&request).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert!(String::from_utf8_lossy(&head).contains("permessage-deflate"));

    let rss_before = resident_kib();
    let (mut reader, mut writer) = tcp.into_split();
    let sender = tokio::spawn(async move {
        let chunks: Vec<&[u8]> = bomb.chunks(64 << 10).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let header = FrameHeader {
                fin: i + 1 == chunks.len(),
                rsv: if i == 0 { 0b100 } else { 0 },
                opcode: if i == 0 {
                    OpCode::Binary
                } else {
                    OpCode::Continuation
                },
                mask: Some([0; 4]), // a zero key leaves the payload as it is
                payload_len: chunk.len() as u64,
            };
            let mut buf = [0u8; 14];
            let n = header.encode(&mut buf);
            // The server closes the connection once it refuses the message.
            if writer.write_all(&buf[..n]).await.is_err() || writer.write_all(chunk).await.is_err()
            {
                break;
            }
        }
    });

    // Meanwhile the bystander is served.
    bystander.send("still here").await.unwrap();
    assert_eq!(
        bystander.recv().await.unwrap().unwrap(),
        Message::Text("still here".into())
    );

    // The attacker gets a close frame with 1009, then the server ends the connection.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer))
        .await
        .expect("the server ends the connection")
        .ok();
    let (header, n) = FrameHeader::parse(&answer).unwrap().expect("a whole frame");
    assert_eq!(header.opcode, OpCode::Close);
    assert_eq!(u16::from_be_bytes([answer[n], answer[n + 1]]), 1009);
    sender.await.unwrap();

    let grown = resident_kib().saturating_sub(rss_before);
    assert!(
        grown < 64 << 10,
        "the server grew by {grown} KiB for a 1 GiB bomb"
    );

    bystander.send("after").await.unwrap();
    assert_eq!(
        bystander.recv().await.unwrap().unwrap(),
        Message::Text("after".into())
    );
}
