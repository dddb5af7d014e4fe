//! Micro-benchmarks of the protocol core's hot paths: unmasking, UTF-8 validation, frame
//! headers, message parsing and assembly through `Connection`, and permessage-deflate.
//!
//! `cargo bench -p switchboard-protocol` times them; `cargo test --benches` only checks that
//! each runs once, so they keep compiling without being timed in CI.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use switchboard_protocol::deflate::{Deflate, DeflateConfig, DeflateParams};
use switchboard_protocol::frame::{apply_mask, apply_mask_naive, FrameHeader, MaskPath};
use switchboard_protocol::{Config, Connection, Event, OpCode, Role, Utf8Validator};

/// Sizes from an empty payload to the 1 MiB message of the macro benchmark.
const MASK_SIZES: [usize; 9] = [0, 16, 64, 256, 1024, 4096, 16384, 65536, 1 << 20];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for size in MASK_SIZES {
        // One byte of slack so the unaligned case can start at an odd address.
        let mut buf = vec![0x5au8; size + 1];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("fast", size), &size, |b, &size| {
            b.iter(|| apply_mask(black_box(&mut buf[..size]), KEY, 0))
        });
        group.bench_with_input(
            BenchmarkId::new("fast_unaligned", size),
            &size,
            |b, &size| b.iter(|| apply_mask(black_box(&mut buf[1..size + 1]), KEY, 3)),
        );
        group.bench_with_input(BenchmarkId::new("naive", size), &size, |b, &size| {
            b.iter(|| apply_mask_naive(black_box(&mut buf[..size]), KEY, 0))
        });
        // Each implementation this CPU has, whatever `apply_mask` would pick for the size.
        for path in MaskPath::available() {
            group.bench_with_input(BenchmarkId::new(path.name(), size), &size, |b, &size| {
                b.iter(|| path.apply(black_box(&mut buf[..size]), KEY, 0))
            });
        }
    }
    group.finish();
}

/// Text a chat or JSON API sends: mostly ASCII with some two-, three- and four-byte code
/// points, so neither validator gets the all-ASCII shortcut everywhere.
fn mixed_text(len: usize) -> Vec<u8> {
    let unit = "{\"user\":\"zoë\",\"msg\":\"naïve café ☕ — ok 👍\",\"n\":42}";
    let mut text = unit.repeat(len / unit.len() + 1).into_bytes();
    // Cut at a char boundary at or below len.
    let mut cut = len.min(text.len());
    while std::str::from_utf8(&text[..cut]).is_err() {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for size in [20, 1024, 16384, 1 << 20] {
        for (kind, text) in [("ascii", vec![b'a'; size]), ("mixed", mixed_text(size))] {
            group.throughput(Throughput::Bytes(text.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("validator_{kind}"), size),
                &text,
                |b, text| {
                    b.iter(|| {
                        let mut validator = Utf8Validator::new();
                        validator.feed(black_box(text)).is_ok() && validator.finish().is_ok()
                    })
                },
            );
            // The same text fed in 4 KiB pieces, as it arrives from the socket.
            group.bench_with_input(
                BenchmarkId::new(format!("validator_pieces_{kind}"), size),
                &text,
                |b, text| {
                    b.iter(|| {
                        let mut validator = Utf8Validator::new();
                        black_box(text)
                            .chunks(4096)
                            .all(|piece| validator.feed(piece).is_ok())
                            && validator.finish().is_ok()
                    })
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("std_{kind}"), size),
                &text,
                |b, text| b.iter(|| std::str::from_utf8(black_box(text)).is_ok()),
            );
        }
    }
    group.finish();
}

fn header(c: &mut Criterion) {
    let mut group = c.benchmark_group("header");
    let cases = [
        (
            "2_bytes",
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Text,
                mask: None,
                payload_len: 20,
            },
        ),
        (
            "6_bytes_masked",
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Text,
                mask: Some(KEY),
                payload_len: 20,
            },
        ),
        (
            "8_bytes_masked",
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: Some(KEY),
                payload_len: 16384,
            },
        ),
        (
            "14_bytes_masked",
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: Some(KEY),
                payload_len: 1 << 20,
            },
        ),
    ];
    for (name, header) in cases {
        let mut encoded = [0u8; 14];
        let len = header.encode(&mut encoded);
        group.bench_function(BenchmarkId::new("parse", name), |b| {
            b.iter(|| FrameHeader::parse(black_box(&encoded[..len])))
        });
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut dst = [0u8; 14];
            b.iter(|| black_box(header).encode(black_box(&mut dst)))
        });
    }
    group.finish();
}

/// `count` masked client frames of `size` payload bytes, the message split into `fragments`
/// frames (1: unfragmented).
fn client_frames(opcode: OpCode, payload: &[u8], count: usize, fragments: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    let piece = payload.len().div_ceil(fragments).max(1);
    for _ in 0..count {
        let pieces: Vec<&[u8]> = if payload.is_empty() {
            vec![payload]
        } else {
            payload.chunks(piece).collect()
        };
        for (i, chunk) in pieces.iter().enumerate() {
            let header = FrameHeader {
                fin: i + 1 == pieces.len(),
                rsv: 0,
                opcode: if i == 0 { opcode } else { OpCode::Continuation },
                mask: Some(KEY),
                payload_len: chunk.len() as u64,
            };
            let mut head = [0u8; 14];
            let n = header.encode(&mut head);
            wire.extend_from_slice(&head[..n]);
            let start = wire.len();
            wire.extend_from_slice(chunk);
            apply_mask(&mut wire[start..], KEY, 0);
        }
    }
    wire
}

/// Parse and assemble messages on a server `Connection`: header, unmask, UTF-8, reassembly.
fn assemble(c: &mut Criterion) {
    let mut group = c.benchmark_group("assemble");
    const COUNT: usize = 64;
    let cases = [
        ("text_20B", OpCode::Text, mixed_text(20), 1),
        ("binary_1KiB", OpCode::Binary, vec![0xa5; 1024], 1),
        ("binary_16KiB", OpCode::Binary, vec![0xa5; 16384], 1),
        (
            "text_16KiB_in_4_fragments",
            OpCode::Text,
            mixed_text(16384),
            4,
        ),
    ];
    for (name, opcode, payload, fragments) in cases {
        let wire = client_frames(opcode, &payload, COUNT, fragments);
        group.throughput(Throughput::Elements(COUNT as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    (
                        Connection::server(Config::default()),
                        BytesMut::from(&wire[..]),
                    )
                },
                |(mut conn, mut buf)| {
                    let mut messages = 0;
                    while let Some(event) = conn.poll_event(&mut buf).expect("valid input") {
                        messages += usize::from(matches!(event, Event::Message(_)));
                    }
                    assert_eq!(messages, COUNT);
                    conn
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The whole sans-I/O echo path on a server: parse, assemble, queue the echo, drain output.
fn echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("echo");
    const COUNT: usize = 64;
    for (name, opcode, payload) in [
        ("text_20B", OpCode::Text, mixed_text(20)),
        ("binary_16KiB", OpCode::Binary, vec![0xa5; 16384]),
    ] {
        let wire = client_frames(opcode, &payload, COUNT, 1);
        group.throughput(Throughput::Elements(COUNT as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    (
                        Connection::server(Config::default()),
                        BytesMut::from(&wire[..]),
                    )
                },
                |(mut conn, mut buf)| {
                    while let Some(event) = conn.poll_event(&mut buf).expect("valid input") {
                        if let Event::Message(message) = event {
                            conn.send(message).expect("open");
                        }
                    }
                    let written: usize = conn.output_chunks_vec().iter().map(|c| c.len()).sum();
                    conn.advance_output(written);
                    black_box(written)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// permessage-deflate at the default level, without context takeover so every iteration
/// compresses and inflates the same independent message.
fn deflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate");
    let params = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let config = DeflateConfig::default();
    for size in [1024, 16384, 1 << 20] {
        let text = mixed_text(size);
        group.throughput(Throughput::Bytes(text.len() as u64));
        let mut codec = Deflate::new(Role::Server, params, &config);
        group.bench_with_input(BenchmarkId::new("compress", size), &text, |b, text| {
            let mut out = BytesMut::with_capacity(text.len());
            b.iter(|| {
                out.clear();
                codec.compress(black_box(text), &mut out);
                out.len()
            })
        });
        // A client-compressed message, as the server inflates it.
        let mut client = Deflate::new(Role::Client, params, &config);
        let mut compressed = BytesMut::new();
        client.compress(&text, &mut compressed);
        let compressed: Bytes = compressed.freeze();
        group.bench_with_input(
            BenchmarkId::new("decompress", size),
            &compressed,
            |b, compressed| {
                let mut out = BytesMut::with_capacity(text.len() + 64);
                b.iter(|| {
                    out.clear();
                    codec
                        .decompress(black_box(compressed), true, usize::MAX, &mut out)
                        .expect("valid deflate");
                    out.len()
                })
            },
        );
        // Checked once, outside timing: the round trip gives the text back.
        let mut out = BytesMut::new();
        codec
            .decompress(&compressed, true, usize::MAX, &mut out)
            .expect("valid deflate");
        assert_eq!(&out[..], &text[..]);
    }
    group.finish();
}

criterion_group!(benches, unmask, utf8, header, assemble, echo, deflate);
criterion_main!(benches);
