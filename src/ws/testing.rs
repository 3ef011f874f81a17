//! Test support for sessions: a socket and output queue as a session borrows them, and
//! readers for the frames written to the socket.

use crate::message::total_message;
use crate::outbox::Outbox;
pub use crate::testing::MockStream;
use crate::ws::frame::text_frame;
use crate::ws::session::{Wire, WsSession};

/// A connection's socket and output queue, as a session borrows them.
#[derive(Debug, Default)]
pub struct Pipe {
    pub stream: MockStream,
    pub out: Outbox,
}

impl Pipe {
    /// A pipe whose socket takes `room` bytes before it is full.
    pub fn with_room(room: usize) -> Pipe {
        Pipe {
            stream: MockStream {
                room,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    pub fn wire(&mut self) -> Wire<'_, MockStream> {
        Wire {
            stream: &mut self.stream,
            out: &mut self.out,
        }
    }
}

/// Queues `{"id":id,"total":total}` as a total.
pub fn push(s: &mut WsSession, wire: &mut Wire<MockStream>, id: &str, total: u64) {
    let frame = text_frame(&total_message(id, total));
    s.push_total(wire, &frame, id, total);
}

/// The text payloads of the unmasked server frames in `bytes` (small frames only).
pub fn texts(bytes: &[u8]) -> Vec<String> {
    frames(bytes)
        .into_iter()
        .map(|(_, payload)| String::from_utf8(payload).expect("text"))
        .collect()
}

/// Frames in `bytes` as (opcode, payload) (small frames only).
pub fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let (mut out, mut i) = (Vec::new(), 0);
    while i + 2 <= bytes.len() {
        let len = (bytes[i + 1] & 0x7f) as usize;
        assert!(len < 126, "test frames are small");
        out.push((bytes[i] & 0x0f, bytes[i + 2..i + 2 + len].to_vec()));
        i += 2 + len;
    }
    out
}
