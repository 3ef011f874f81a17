//! The event loop: one `mio::Poll`, the listener, and every connection in a `Slab` keyed by
//! its token. Each turn, in Redis's order: the backend finishes its work, results become
//! responses, updates go to the fan-out, connections with output are written (HTTP first,
//! then a slice of streams), marked connections are closed; then the loop polls, reads,
//! and runs its timers.
//!
//! Handlers (reading, flushing, timers) never schedule anything themselves: each returns a
//! [`Next`], and [`Server::act`] is the one place that lists a connection for a write or a
//! read, starts lingering, or marks it to close. (The fan-out lists its subscribers for a
//! write itself when it publishes: that is its own round, not a handler's verdict.) The
//! parts live beside this file:
//! `accept.rs`, `http.rs` (requests and held responses), `ws.rs` (sessions and commands),
//! `events.rs` (event streams), `streams.rs` (what both kinds of stream share), `writes.rs`
//! (the write pass, lingering) and `timers.rs` (deadlines, the simulator, shutdown).

mod accept;
mod events;
mod http;
mod streams;
mod timers;
mod writes;
mod ws;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::config::Config;
use crate::conn::{Conn, Phase, Proto};
use crate::error::Error;
use crate::fanout::Fanout;
use crate::http::{Limits, Response};
use crate::log::Log;
use crate::metrics::{Counters, Gauges};
use crate::outbox::interrupted;
use crate::routes::{Access, App};
use crate::state::catalog::DEFAULT_DATA;
use crate::state::redis::{self, Redis};
use crate::state::{Backend, Catalog, Done, Memory, Update};
use crate::static_files::StaticFiles;

pub use writes::WS_WRITES_PER_TURN;

/// The listener's token, outside the slab's range so slab keys can be tokens.
const LISTENER: Token = Token(usize::MAX);
/// The signal pipe's token.
const SIGNALS: Token = Token(usize::MAX - 1);

/// What a handler wants done with its connection. Only [`Server::act`] carries it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing until the socket says more.
    Idle,
    /// Output is queued: write it in the write pass before the next poll (a stream
    /// takes its place in the fan-out's list, written at most a slice per turn).
    Flush,
    /// Input may be left that no event will announce (a share of the turn ran out, reading
    /// was paused, a held request was answered): read it next turn, and write what is queued.
    Reread,
    /// The last bytes are written: shut our side down and wait briefly for the peer.
    Linger,
    /// Done: close at the end of this turn.
    Close,
}

/// The server: owns the poll, the listener, the connections and the state.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    conns: Slab<Conn>,
    /// The id the next connection gets.
    next_conn_id: u64,
    app: App,
    backend: Box<dyn Backend>,
    fanout: Fanout,
    config: Config,
    limits: Limits,
    max_connections: usize,
    /// HTTP connections with output to write before the next poll.
    to_write: Vec<usize>,
    /// Connections to read again next turn.
    to_reread: Vec<usize>,
    /// Connections to close after this turn.
    to_close: Vec<usize>,
    /// Results and updates drained from the backend, kept for their allocations.
    done: Vec<Done>,
    updates: Vec<Update>,
    scratch: Vec<u8>,
    log: Log,
    /// What `/metrics` reports besides what the connections say when scraped.
    counters: Counters,
    timers: timers::Timers,
    signals: Option<Signals>,
    now: Instant,
}

impl Server {
    /// Loads the data, raises the fd limit and binds the listener. The server does not
    /// accept anything until [`Server::run`].
    pub fn bind(config: Config) -> Result<Server, Error> {
        let data = match &config.data_file {
            None => DEFAULT_DATA.to_string(),
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                Error::Data(format!("cannot read data file {}: {e}", path.display()))
            })?,
        };
        let catalog = Catalog::from_json(&data).map_err(|e| match &config.data_file {
            Some(path) => Error::Data(format!("data file {}: {e}", path.display())),
            None => Error::Data(format!("the built-in data: {e}")),
        })?;
        let mut log = Log::from_env();
        if let Ok(spec) = std::env::var("RUST_LOG")
            && !crate::log::Level::is_known(&spec)
        {
            log.warn(format_args!(
                "RUST_LOG={spec:?} names no level (off, error, warn, info, debug, trace); logging at info"
            ));
        }
        let data_id = crc32fast::hash(data.as_bytes());
        let backend = open_backend(&config, catalog, data_id, &mut log)?;
        let files = match &config.static_dir {
            None => StaticFiles::BuiltIn,
            Some(dir) => StaticFiles::dir(dir)
                .map_err(|e| Error::Usage(format!("--static {}: {e}", dir.display())))?,
        };
        let addr = (config.host.as_str(), config.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| Error::Usage(format!("--host {:?} is not an address", config.host)))?;
        let fd_limit = accept::raise_fd_limit();
        let max_connections = config.max_connections.unwrap_or_else(|| {
            (fd_limit as usize)
                .saturating_sub(accept::RESERVED_FDS)
                .max(1)
        });

        let poll = Poll::new().map_err(|e| Error::io("cannot create the poll", e))?;
        let mut listener = accept::listen(addr, config.reuse_port)
            .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the bound address", e))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::io("cannot register the listener", e))?;
        let mut backend = backend;
        backend
            .register(poll.registry())
            .map_err(|e| Error::io("cannot register the backend's connections", e))?;

        let access = Access {
            loopback_hosts_only: addr.ip().is_loopback(),
            extra_origins: config.allow_origins.clone(),
        };
        let categories = backend.catalog().category_names().count();
        let fanout = Fanout::new(categories, config.ws_queue_bytes);
        let now = Instant::now();
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            conns: Slab::new(),
            next_conn_id: 0,
            app: App {
                files,
                access,
                echo: config.echo,
            },
            backend,
            fanout,
            limits: Limits {
                max_head_bytes: config.max_head_bytes,
                max_body_bytes: config.max_body_bytes,
            },
            max_connections,
            to_write: Vec::new(),
            to_reread: Vec::new(),
            to_close: Vec::new(),
            done: Vec::new(),
            updates: Vec::new(),
            scratch: vec![0; http::READ_CHUNK_BYTES],
            log,
            counters: Counters::default(),
            timers: timers::Timers::new(&config, now),
            signals: None,
            now,
            config,
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Changes the log level (the default comes from `RUST_LOG`).
    pub fn set_log_level(&mut self, level: crate::log::Level) {
        self.log = Log::new(level);
    }

    /// Most connections the server holds at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Shuts down gracefully on SIGINT, SIGTERM and SIGHUP (a closed terminal), see
    /// [`Server::run`].
    pub fn handle_signals(&mut self) -> Result<(), Error> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGXFSZ};
        // Past a file size limit (RLIMIT_FSIZE) a write should fail with EFBIG, answered
        // like a full disk, rather than kill the process.
        signal_hook::flag::register(
            SIGXFSZ,
            std::sync::Arc::<std::sync::atomic::AtomicBool>::default(),
        )
        .map_err(|e| Error::io("cannot install signal handlers", e))?;
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| Error::io("cannot install signal handlers", e))?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| Error::io("cannot register signals", e))?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Runs until a shutdown signal has been handled: then it stops accepting, closes
    /// WebSockets with 1001 (and ends event streams), finishes responses being written and
    /// returns `Ok`.
    pub fn run(&mut self) -> Result<(), Error> {
        let mut events = Events::with_capacity(1024);
        // Where it listens is said once, on stdout, by the caller.
        if let Some(period) = self.config.simulate {
            self.log.info(format_args!(
                "simulating orders: every {} ms a random product gains 1 to 7",
                period.as_millis()
            ));
        }
        loop {
            self.before_sleep();
            if self.timers.stopped(self.now, self.conns.is_empty()) {
                self.backend.report(&mut self.log);
                self.log.info(format_args!("stopped"));
                self.log.flush();
                return Ok(());
            }
            let busy =
                !self.to_write.is_empty() || !self.to_reread.is_empty() || !self.fanout.is_idle();
            let next = match self.backend.wakeup() {
                Some(at) => self.timers.next().min(at),
                None => self.timers.next(),
            };
            let timeout = match busy {
                true => Duration::ZERO,
                false => next.saturating_duration_since(Instant::now()),
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(Error::io("poll failed", e)),
            }
            self.now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    SIGNALS => self.on_signal(),
                    token @ (redis::COMMANDS | redis::SUBSCRIPTION) => {
                        let writable = event.is_writable() || event.is_error();
                        self.backend.ready(token, writable, self.now, &mut self.log);
                    }
                    Token(key) => {
                        if event.is_writable() || event.is_write_closed() || event.is_error() {
                            self.act(key, Next::Flush);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            let next = self.read(key);
                            self.act(key, next);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.to_reread) {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.reread = false;
                    let next = self.read(key);
                    self.act(key, next);
                }
            }
            self.run_timers();
            let registry = self.poll.registry();
            self.backend.tick(registry, self.now, &mut self.log);
        }
    }

    /// The work before each poll, in order: the backend finishes this turn's changes (and
    /// makes them durable where it promises that); their results become the held
    /// responses; the updates go to the fan-out (and at shutdown, streams are ended
    /// after them); connections with output are written; the ones marked are closed; the
    /// log is written.
    fn before_sleep(&mut self) {
        self.backend.before_sleep(&mut self.log);
        self.backend.drain(&mut self.done, &mut self.updates);
        let mut done = std::mem::take(&mut self.done);
        for (ticket, result) in done.drain(..) {
            self.counters.change(&result);
            let next = self.answer_held(ticket, result);
            self.act(ticket.key, next);
        }
        self.done = done;
        self.counters.totals_changed += self.updates.len() as u64;
        for update in self.updates.drain(..) {
            self.fanout.publish(update, &mut self.conns);
        }
        self.close_websockets_if_due();
        self.write_pending();
        self.close_marked();
        self.log.flush();
    }

    /// Reads what the connection sent and handles it.
    fn read(&mut self, key: usize) -> Next {
        let Some(conn) = self.conns.get(key) else {
            return Next::Idle;
        };
        match conn.phase {
            Phase::Draining | Phase::Closing => Next::Idle,
            Phase::Lingering => self.read_lingering(key),
            Phase::Open => match conn.proto {
                Proto::Http(_) => self.read_http(key),
                Proto::WebSocket(_) => self.read_ws(key),
                Proto::Events(_) => self.read_events(key),
            },
        }
    }

    /// Carries out what a handler asked for `key`.
    fn act(&mut self, key: usize, next: Next) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        match next {
            Next::Idle => {}
            Next::Flush => self.list_to_write(key),
            Next::Reread => {
                if !std::mem::replace(&mut conn.reread, true) {
                    self.to_reread.push(key);
                }
                self.list_to_write(key);
            }
            Next::Linger => {
                let next = self.linger(key);
                self.act(key, next);
            }
            Next::Close => {
                conn.phase = Phase::Closing;
                self.to_close.push(key);
                // A closing connection takes no more totals and is written no more.
                self.fanout.remove(key);
            }
        }
    }

    /// Lists the connection to be written before the next poll (once).
    fn list_to_write(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.phase == Phase::Lingering {
            // Its side is shut down: nothing more goes out.
        } else if conn.is_stream() {
            self.fanout.list(key);
        } else if !std::mem::replace(&mut conn.listed, true) {
            self.to_write.push(key);
        }
    }

    /// Closes the marked connections: deregisters them and removes them from the slab (the
    /// fan-out forgot them when they were marked), so a reused key inherits nothing.
    fn close_marked(&mut self) {
        for key in std::mem::take(&mut self.to_close) {
            let mut conn = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.counters.conflated_closed += conn.conflated();
            if conn.is_websocket() {
                self.log
                    .info(format_args!("{} websocket closed #{key}", conn.peer));
            } else if conn.is_stream() {
                self.log
                    .info(format_args!("{} event stream closed #{key}", conn.peer));
            } else {
                self.log
                    .debug(format_args!("{} disconnected (#{key})", conn.peer));
            }
        }
    }
}

impl Server {
    /// `GET /metrics`: the counters, and what the connections say now.
    fn metrics(&self) -> Response {
        let mut now = Gauges {
            deliveries: self.fanout.deliveries(),
            conflated: self.counters.conflated_closed,
            ..Gauges::default()
        };
        for (key, conn) in &self.conns {
            now.bytes_queued += conn.out.len() as u64;
            now.requests_held += u64::from(conn.is_held());
            now.conflated += conn.conflated();
            let subscribed = u64::from(self.fanout.feed_of(key).is_some());
            match conn.proto {
                Proto::Http(_) => now.http_connections += 1,
                Proto::WebSocket(_) => {
                    now.websockets += 1;
                    now.websocket_subscribers += subscribed;
                }
                Proto::Events(_) => {
                    now.event_streams += 1;
                    now.event_stream_subscribers += subscribed;
                }
            }
        }
        let text = self.counters.render(&now);
        Response::typed(200, "text/plain; version=0.0.4; charset=utf-8", text)
            .header("Cache-Control", "no-store")
    }
}

/// The connection `conn_id` at slab key `key`, unless it has closed (or is closing): slab
/// keys are reused, so a key alone may name the next connection in that slot.
fn live(conns: &mut Slab<Conn>, key: usize, conn_id: u64) -> Option<&mut Conn> {
    conns
        .get_mut(key)
        .filter(|c| c.id == conn_id && c.phase != Phase::Closing)
}

/// The backend the config asks for: the state in memory, with a journal when one is given
/// (replayed on top of `catalog`, the data).
fn open_backend(
    config: &Config,
    catalog: Catalog,
    data_id: u32,
    log: &mut Log,
) -> Result<Box<dyn Backend>, Error> {
    if let Some(url) = &config.redis {
        let redis = Redis::connect(url, &config.redis_prefix, catalog)
            .map_err(Error::State)?
            .checking_every(config.redis_check_interval);
        let categories = redis.catalog().category_names().count();
        log.info(format_args!(
            "Redis at {url}: {categories} categories under the prefix {:?}",
            config.redis_prefix
        ));
        return Ok(Box::new(redis));
    }
    let Some(path) = &config.journal else {
        return Ok(Box::new(Memory::new(catalog)));
    };
    let compact = config.journal_compact_bytes;
    let (memory, opened) =
        Memory::with_journal(path, catalog, data_id, compact).map_err(Error::State)?;
    let name = path.display();
    if opened.dropped > 0 {
        log.warn(format_args!(
            "journal {name}: cut off a torn tail of {} bytes (a write the last run did not finish)",
            opened.dropped
        ));
    }
    let base = if opened.from_snapshot {
        "its snapshot"
    } else {
        "the data"
    };
    log.info(format_args!(
        "journal {name}: {} changes replayed on top of {base}",
        opened.replayed
    ));
    Ok(Box::new(memory))
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.conns.len())
            .finish()
    }
}
