//! Accepting connections: the listener (its backlog, SO_REUSEPORT), the connection cap
//! (503), and the pause when the process is out of file descriptors, so that EMFILE never
//! makes the loop spin.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::Server;
use crate::conn::Conn;
use crate::error::HttpError;
use crate::http::Response;
use crate::outbox::{interrupted, would_block};

/// How long to stop accepting when the process is out of file descriptors.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Descriptors kept for everything that is not a connection (listener, poll, signals,
/// static files, stdio).
pub const RESERVED_FDS: usize = 32;

impl Server {
    /// Accepts every waiting connection. At the connection cap new clients get 503; when
    /// the process is out of descriptors, accepting pauses briefly instead of spinning.
    pub(super) fn accept_all(&mut self) {
        if self.timers.accept_paused_until.is_some() {
            return;
        }
        while let Some(listener) = &self.listener {
            let (mut stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                    // EMFILE/ENFILE: the connection stays in the backlog; retry shortly.
                    // One warning per episode, not one per retry.
                    let t = &mut self.timers;
                    if t.fd_warning_until.is_none_or(|until| self.now >= until) {
                        self.log.warn(format_args!(
                            "out of file descriptors ({e}); pausing accept"
                        ));
                    }
                    t.fd_warning_until = Some(self.now + 10 * ACCEPT_BACKOFF);
                    t.accept_paused_until = Some(self.now + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => {
                    self.log.debug(format_args!("accept failed: {e}"));
                    continue;
                }
            };
            if self.conns.len() >= self.max_connections {
                refuse_busy(&mut stream);
                self.log.warn(format_args!(
                    "{peer} refused: {} connections open",
                    self.conns.len()
                ));
                continue;
            }
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                self.log
                    .warn(format_args!("{peer} dropped: cannot register: {e}"));
                continue;
            }
            let _ = stream.set_nodelay(true);
            let id = self.next_conn_id;
            self.next_conn_id += 1;
            let idle_until = self.now + self.config.idle_timeout;
            entry.insert(Conn::new(id, stream, peer, idle_until));
            self.log.debug(format_args!("{peer} connected (#{key})"));
        }
    }
}

/// Tells a client turned away at the connection cap why, without waiting for it.
fn refuse_busy(stream: &mut TcpStream) {
    let err = HttpError::new(503, "too many connections; try again shortly");
    let mut out = Vec::new();
    Response::error(&err)
        .header("Retry-After", "1")
        .write_to(&mut out, false, false);
    let _ = stream.write(&out);
}

/// Connection attempts the kernel queues while the loop is busy: enough for 2,000 clients
/// connecting at once (mio's default of 128 drops attempts past it).
pub const LISTEN_BACKLOG: i32 = 1024;

/// A non-blocking listener on `addr` with a backlog of [`LISTEN_BACKLOG`]. With
/// `reuse_port` (SO_REUSEPORT), several processes listen on one port and the kernel spreads
/// new connections between them.
pub fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restart may bind while the last run's connections are in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Raises the soft limit on open files to the hard limit; returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    limit.current.unwrap_or(1 << 20)
}
