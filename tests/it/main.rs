//! Integration tests: the real server on an ephemeral port, spoken to from the outside
//! with raw TCP, a tungstenite client, an event-stream reader, and (in `ops`) the built binary.

mod helpers;
mod hostile;
mod http;
mod journal;
mod misbehave;
mod ops;
mod redis;
mod sse;
mod ws;
