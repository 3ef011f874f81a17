//! mock-srv: a real-time orders service on one thread.
//!
//! A request arrives on a non-blocking socket. The [`server`] loop reads it into its
//! connection ([`conn`]), [`http`] frames it, and [`routes`] decides what it means: a
//! response, a WebSocket upgrade, or a change to the [`state`]. A change is submitted to the
//! backend and its response is held until the backend says it is applied; every change of a
//! total then comes back out of the backend as an update, the only way into the [`fanout`]:
//! its `{"id","total"}` message ([`message`]) is framed once into the category's feed, which
//! every WebSocket subscribed to that category takes from when it is next written (an
//! event stream, [`sse`], takes the same totals as `data:` lines).
//!
//! Each connection has one output queue ([`outbox`]); before each poll the loop writes the
//! connections with output, HTTP responses first, then WebSockets in bounded slices.
//! WebSocket sessions ([`ws`]) are tungstenite's, driven over the same socket.
//!
//! Start with [`server`] for the loop, then [`conn`] for a connection's life and [`state`]
//! for the way every change goes.

#![forbid(unsafe_code)]

pub mod config;
pub mod conn;
pub mod error;
pub mod fanout;
pub mod http;
pub mod latest;
pub mod log;
pub mod message;
pub mod metrics;
pub mod outbox;
pub mod routes;
pub mod server;
pub mod sse;
pub mod state;
pub mod static_files;
#[cfg(test)]
pub mod testing;
pub mod ws;

pub use config::Config;
pub use error::Error;
pub use server::Server;
