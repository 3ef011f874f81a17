//! mock-srv: a real-time orders service on one thread.
//!
//! A request arrives on a non-blocking socket; [`server::Server`] reads it into the
//! connection's buffer, [`http`] frames it, [`routes`] decides what it means against the
//! [`store`], and the answer goes back into the connection's output buffer. A
//! `POST /orders/<id>` also produces an update: its `{"id","total"}` message is serialised
//! and framed once into the [`feed`] of the product's category, which every WebSocket
//! subscribed to that category ([`pubsub`]) takes from when it is next flushed. Connections
//! with output are flushed once per loop turn, WebSockets in rounds of a bounded size.
//! WebSocket framing is tungstenite's ([`ws`]), driven over the same socket.
//!
//! Start with [`server`] for the loop, then [`conn`] for a connection's life.

#![forbid(unsafe_code)]

pub mod config;
pub mod conn;
pub mod error;
pub mod feed;
pub mod http;
pub mod log;
pub mod pubsub;
pub mod routes;
pub mod server;
pub mod static_files;
pub mod store;
pub mod ws;

pub use config::Config;
pub use error::Error;
pub use server::Server;
