//! The two servers under test and what each expects on the wire.
//!
//! - `switchboard serve`: subscribers are the seeds' chat room, `GET /ws/{channel}`, where
//!   every message arrives as one text frame; the publisher uses the JSON protocol on
//!   `GET /ws` (`{"op":"publish",…}`), so it is not a subscriber itself.
//! - Socket.IO (bench/fanout/socketio-server.js): Engine.IO v4 over WebSocket only,
//!   `GET /socket.io/?EIO=4&transport=websocket`; after the 101 the server sends the open
//!   packet `0{…}`, the client joins the default namespace with `40` and is answered `40{…}`.
//!   The publisher emits `42["pub",…]`, the server broadcasts `42["msg",…]` to every other
//!   socket. The server pings with a text frame `2`; the answer is `3`.

use switchboard_loadgen::wire;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::frames::{self, Frame};

/// The server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Target {
    /// `switchboard serve`.
    Switchboard,
    /// The Socket.IO server of bench/fanout/socketio-server.js.
    Socketio,
}

/// What a received frame means to the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A broadcast message: one delivery.
    Data,
    /// Something to answer with these bytes (a pong, an Engine.IO `3`).
    Reply(Vec<u8>),
    /// Nothing to do (acks, namespace answers, pongs).
    Ignore,
    /// The server closed the connection.
    Close,
}

/// A mask for client frames; the masking key need not be random for a load generator
/// talking to servers it controls, only present.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

impl Target {
    /// The request path of a subscriber.
    pub(crate) fn subscriber_path(self, channel: &str) -> String {
        match self {
            Target::Switchboard => format!("/ws/{channel}"),
            Target::Socketio => "/socket.io/?EIO=4&transport=websocket".to_owned(),
        }
    }

    /// The request path of the publisher.
    pub(crate) fn publisher_path(self) -> String {
        match self {
            Target::Switchboard => "/ws".to_owned(),
            Target::Socketio => "/socket.io/?EIO=4&transport=websocket".to_owned(),
        }
    }

    /// The masked frame that publishes `payload` (ASCII letters, so no JSON escaping).
    pub(crate) fn publish_frame(self, channel: &str, payload: &str) -> Vec<u8> {
        let text = match self {
            Target::Switchboard => {
                format!(r#"{{"op":"publish","channel":"{channel}","data":"{payload}"}}"#)
            }
            Target::Socketio => format!(r#"42["pub","{payload}"]"#),
        };
        wire::masked_frame(0x1, text.as_bytes(), MASK)
    }

    /// Classifies one frame received by a subscriber (or, for its control frames and
    /// pings, by the publisher).
    pub(crate) fn classify(self, frame: &Frame<'_>) -> Incoming {
        match frame.opcode {
            0x8 => Incoming::Close,
            0x9 => Incoming::Reply(wire::masked_frame(0xA, frame.payload, MASK)),
            0x1 => match self {
                Target::Switchboard => Incoming::Data,
                Target::Socketio if frame.payload == b"2" => {
                    Incoming::Reply(wire::masked_frame(0x1, b"3", MASK))
                }
                Target::Socketio if frame.payload.starts_with(b"42") => Incoming::Data,
                Target::Socketio => Incoming::Ignore,
            },
            _ => Incoming::Ignore,
        }
    }

    /// Whatever must follow the 101 before the connection receives broadcasts. `buf` holds
    /// bytes already read after the handshake; on return it holds the bytes read beyond
    /// the join.
    pub(crate) async fn join(
        self,
        stream: &mut TcpStream,
        buf: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        match self {
            // The chat room subscribes before it answers the upgrade; /ws needs nothing.
            Target::Switchboard => Ok(()),
            Target::Socketio => {
                let open = read_text(stream, buf).await?;
                anyhow::ensure!(
                    open.starts_with(b"0{"),
                    "expected the Engine.IO open packet, got {:?}",
                    String::from_utf8_lossy(&open)
                );
                stream
                    .write_all(&wire::masked_frame(0x1, b"40", MASK))
                    .await?;
                let joined = read_text(stream, buf).await?;
                anyhow::ensure!(
                    joined.starts_with(b"40"),
                    "expected the namespace answer `40{{…}}`, got {:?}",
                    String::from_utf8_lossy(&joined)
                );
                Ok(())
            }
        }
    }
}

/// Reads the next text frame's payload (skipping control frames).
async fn read_text(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Vec<u8>> {
    loop {
        if let Some((frame, used)) = frames::parse(buf)? {
            let text = (frame.opcode == 0x1).then(|| frame.payload.to_vec());
            buf.drain(..used);
            if let Some(text) = text {
                return Ok(text);
            }
            continue;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed while joining");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(p: &[u8]) -> Frame<'_> {
        Frame {
            opcode: 1,
            payload: p,
        }
    }

    #[test]
    fn socketio_frames() {
        let t = Target::Socketio;
        assert_eq!(t.classify(&text(br#"42["msg","abc"]"#)), Incoming::Data);
        assert_eq!(t.classify(&text(br#"40{"sid":"x"}"#)), Incoming::Ignore);
        match t.classify(&text(b"2")) {
            Incoming::Reply(f) => assert_eq!(f[..2], [0x81, 0x81]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn switchboard_frames_and_control() {
        let t = Target::Switchboard;
        assert_eq!(t.classify(&text(b"anything")), Incoming::Data);
        let close = Frame {
            opcode: 8,
            payload: b"",
        };
        assert_eq!(t.classify(&close), Incoming::Close);
        let ping = Frame {
            opcode: 9,
            payload: b"p",
        };
        assert!(matches!(t.classify(&ping), Incoming::Reply(f) if f[0] == 0x8A));
    }

    #[test]
    fn publish_frames_carry_the_payload() {
        let f = Target::Switchboard.publish_frame("room", "abc");
        let unmasked: Vec<u8> = f[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ MASK[i & 3])
            .collect();
        assert_eq!(
            unmasked,
            br#"{"op":"publish","channel":"room","data":"abc"}"#.to_vec()
        );
    }
}
