//! Test support: a socket that fills up on purpose, the way tungstenite's own tests drive a
//! non-blocking path.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

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
