//! WebSockets: frames built by hand for what is sent to many ([`frame`]), and one session
//! over tungstenite for everything else ([`session`]).

pub mod frame;
pub mod session;
#[cfg(test)]
pub mod testing;

pub use session::{Closed, Incoming, Wire, WsSession};
