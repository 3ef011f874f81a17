//! Chunked request bodies (RFC 9112 section 7.1), decoded as they arrive: sizes, extensions,
//! trailers, and a bound on the framing so that tiny chunks cannot multiply a body.

use crate::error::HttpError;

/// Longest chunk-size line (with extensions) or trailer line of a chunked body.
const MAX_CHUNK_LINE_BYTES: usize = 4096;

/// Decodes a chunked body as it arrives, keeping its place so no byte is looked at twice.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    /// Offset (from the start of the body) of the next byte to decode.
    pos: usize,
    state: ChunkState,
    /// The decoded body so far; taken once the whole body is in.
    pub body: Vec<u8>,
    trailer_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Trailer,
}

impl ChunkDecoder {
    /// Decodes what it can of `raw` (the body bytes received so far). Returns the number of
    /// raw bytes the whole body used once the last chunk and trailer are in.
    pub fn advance(&mut self, raw: &[u8], max_body: usize) -> Result<Option<usize>, HttpError> {
        loop {
            let rest = &raw[self.pos..];
            match self.state {
                ChunkState::Size => {
                    // Framing (size lines, extensions) may not cost more than the data it
                    // carries: a body of tiny chunks with long extensions is refused.
                    if self.pos > max_body.saturating_mul(2) + MAX_CHUNK_LINE_BYTES {
                        return Err(HttpError::new(
                            413,
                            format!("chunked body framing is larger than {max_body} bytes allow"),
                        ));
                    }
                    let Some(line) = take_line(rest)? else {
                        return Ok(None);
                    };
                    self.pos += line.len();
                    let size = parse_chunk_size(line)?;
                    if size > max_body.saturating_sub(self.body.len()) {
                        return Err(HttpError::new(
                            413,
                            format!("request body is larger than {max_body} bytes"),
                        ));
                    }
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(rest.len());
                    self.body.extend_from_slice(&rest[..n]);
                    self.pos += n;
                    self.state = if n == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n)
                    };
                }
                ChunkState::DataEnd => match rest {
                    [] | [b'\r'] => return Ok(None),
                    [b'\r', b'\n', ..] => {
                        self.pos += 2;
                        self.state = ChunkState::Size;
                    }
                    _ => {
                        return Err(HttpError::new(
                            400,
                            "chunk data is longer than its declared size",
                        ));
                    }
                },
                ChunkState::Trailer => {
                    let Some(line) = take_line(rest)? else {
                        return Ok(None);
                    };
                    self.pos += line.len();
                    self.trailer_bytes += line.len();
                    if self.trailer_bytes > MAX_CHUNK_LINE_BYTES {
                        return Err(HttpError::new(431, "chunked trailer is too large"));
                    }
                    if line == b"\r\n" {
                        return Ok(Some(self.pos));
                    }
                    let is_field = line.ends_with(b"\r\n")
                        && line.iter().position(|&b| b == b':').is_some_and(|colon| {
                            colon > 0 && line[..colon].iter().all(|b| b.is_ascii_graphic())
                        });
                    if !is_field {
                        return Err(HttpError::new(400, "malformed chunked trailer"));
                    }
                }
            }
        }
    }
}

/// The first line of `buf` including its `\n`, if it has arrived; 400 when it is too long.
fn take_line(buf: &[u8]) -> Result<Option<&[u8]>, HttpError> {
    let window = &buf[..buf.len().min(MAX_CHUNK_LINE_BYTES)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => Ok(Some(&buf[..=i])),
        None if buf.len() >= MAX_CHUNK_LINE_BYTES => {
            Err(HttpError::new(400, "chunk line is too long"))
        }
        None => Ok(None),
    }
}

/// Parses the hex size at the start of a chunk-size line (extensions after `;` ignored).
fn parse_chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let bad = || HttpError::new(400, "invalid chunk size line");
    let line = line.strip_suffix(b"\r\n").ok_or_else(bad)?;
    if line.contains(&b'\r') {
        return Err(bad());
    }
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let digits = line[..end].trim_ascii_end();
    if digits.is_empty() {
        return Err(bad());
    }
    digits.iter().try_fold(0usize, |acc, &b| {
        let d = (b as char).to_digit(16).ok_or_else(bad)? as usize;
        acc.checked_mul(16)
            .and_then(|v| v.checked_add(d))
            .ok_or_else(bad)
    })
}
