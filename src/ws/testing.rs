//! Test support: a socket that fills up on purpose, the way tungstenite's own tests drive a
//! non-blocking path, and readers for the frames written to it.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use crate::message::total_message;
use crate::outbox::Outbox;
use crate::ws::frame::text_frame;
use crate::ws::session::{Wire, WsSession};

/// A stream whose writes accept up to `room` bytes and then return WouldBlock, like a
/// full socket; reads come from `input` and then WouldBlock.
#[derive(Debug, Default)]
pub struct MockStream {
    pub input: VecDeque<u8>,
    pub written: Vec<u8>,
    pub room: usize,
}

impl Read for MockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        for b in buf.iter_mut().take(n) {
            *b = self.input.pop_front().expect("checked");
        }
        Ok(n)
    }
}

impl Write for MockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection's socket and output queue, as a session borrows them.
#[derive(Debug, Default)]
pub struct Pipe {
    pub stream: MockStream,
    pub out: Outbox,
}

impl Pipe {
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
