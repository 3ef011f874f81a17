//! The event loop: one `mio::Poll`, the listener, and every connection in a `Slab` keyed by
//! its token. Each turn: flush the connections with pending output (one write per
//! connection, however many updates were queued; HTTP responses first, then at most
//! [`WS_FLUSHES_PER_TURN`] WebSockets, oldest first), close the ones marked for closing,
//! write the log, then poll and handle readiness. Publishing never touches a socket directly.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use tungstenite::Message;

use crate::config::Config;
use crate::conn::{Conn, Deadline, State, Wire, interrupted, would_block};
use crate::error::{Error, HttpError};
use crate::feed::Feed;
use crate::http::{Limits, Method, Parsed, Request, Response};
use crate::log::Log;
use crate::pubsub::Subscribers;
use crate::routes::{self, Access, App, Channel, Outcome, Update};
use crate::static_files::StaticFiles;
use crate::store::{CategoryId, Store};
use crate::ws::{self, Command, Flushed, Incoming, WsSession};

/// The listener's token, outside the slab's range so slab keys can be tokens.
const LISTENER: Token = Token(usize::MAX);
/// The signal pipe's token.
const SIGNALS: Token = Token(usize::MAX - 1);
/// Stop reading a connection's requests while this much output waits for it.
const OUT_HIGH_WATER_BYTES: usize = 256 * 1024;
/// Bytes read from a socket per `read` call.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most reads of one HTTP connection, or messages of one WebSocket, handled per loop turn,
/// so that a client that never stops sending cannot starve the others.
const READS_PER_TURN: usize = 16;
const MESSAGES_PER_TURN: usize = 64;
/// Most WebSockets written per loop turn. A broadcast to more subscribers goes out over
/// several turns, round-robin, and the loop polls in between: requests are answered and new
/// updates queued while it is under way, so a subscriber waits at most one round for an
/// update, not the rest of the current round and then its place in the next.
pub const WS_FLUSHES_PER_TURN: usize = 128;
/// How long a closing connection may take to read our last response.
const LINGER: Duration = Duration::from_secs(2);
/// How long to stop accepting when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Descriptors kept for everything that is not a connection (listener, poll, signals,
/// static files, stdio).
const RESERVED_FDS: usize = 32;

/// The server: owns the poll, the listener, the connections and the application state.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    conns: Slab<Conn>,
    app: App,
    subs: Subscribers,
    /// Each category's totals not yet taken by all of its subscribers.
    feeds: Vec<Feed>,
    config: Config,
    limits: Limits,
    max_connections: usize,
    /// HTTP connections with output to flush before the next poll.
    pending_http: Vec<usize>,
    /// WebSockets with output to flush, in the order they got it.
    pending_ws: VecDeque<usize>,
    /// After this many more WebSockets are flushed, a new round starts: the subscribers of
    /// every category published to since the last one are listed to flush. `None` while
    /// nothing was published since.
    round_due_in: Option<usize>,
    /// Keys to close after the current turn.
    closing: Vec<usize>,
    /// Keys that still had input when their share of a turn ran out.
    reread: Vec<usize>,
    scratch: Vec<u8>,
    log: Log,
    signals: Option<Signals>,
    shutdown_at: Option<Instant>,
    accept_paused_until: Option<Instant>,
    /// No new out-of-descriptors warning before this (set again at each retry).
    fd_warning_until: Option<Instant>,
    sweep_every: Duration,
    next_sweep: Instant,
    next_simulation: Option<Instant>,
    rng: u64,
    now: Instant,
}

impl Server {
    /// Loads the data, raises the fd limit and binds the listener. The server does not
    /// accept anything until [`Server::run`].
    pub fn bind(config: Config) -> Result<Server, Error> {
        let store = match &config.data_file {
            None => Store::with_defaults(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Data(format!("cannot read data file {}: {e}", path.display()))
                })?;
                Store::from_json(&text)
                    .map_err(|e| Error::Data(format!("data file {}: {e}", path.display())))?
            }
        };
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
        let fd_limit = raise_fd_limit();
        let max_connections = config
            .max_connections
            .unwrap_or_else(|| (fd_limit as usize).saturating_sub(RESERVED_FDS).max(1));

        let poll = Poll::new().map_err(|e| Error::io("cannot create the poll", e))?;
        let mut listener = TcpListener::bind(addr)
            .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the bound address", e))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::io("cannot register the listener", e))?;

        let access = Access {
            loopback_hosts_only: addr.ip().is_loopback(),
            extra_origins: config.allow_origins.clone(),
        };
        let categories = store.category_names().count();
        let subs = Subscribers::new(categories);
        let feeds = std::iter::repeat_with(Feed::default)
            .take(categories)
            .collect();
        let now = Instant::now();
        let shortest = config
            .request_timeout
            .min(config.idle_timeout)
            .min(config.ws_ping_interval);
        let sweep_every = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            conns: Slab::new(),
            app: App {
                store,
                files,
                access,
                echo: config.echo,
            },
            subs,
            feeds,
            limits: Limits {
                max_head_bytes: config.max_head_bytes,
                max_body_bytes: config.max_body_bytes,
            },
            max_connections,
            pending_http: Vec::new(),
            pending_ws: VecDeque::new(),
            round_due_in: None,
            closing: Vec::new(),
            reread: Vec::new(),
            scratch: vec![0; READ_CHUNK_BYTES],
            log: Log::from_env(),
            signals: None,
            shutdown_at: None,
            accept_paused_until: None,
            fd_warning_until: None,
            sweep_every,
            next_sweep: now + sweep_every,
            next_simulation: config.simulate.map(|period| now + period),
            rng: seed | 1,
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

    /// Shuts down gracefully on SIGINT and SIGTERM (see [`Server::run`]).
    pub fn handle_signals(&mut self) -> Result<(), Error> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::io("cannot install signal handlers", e))?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| Error::io("cannot register signals", e))?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Runs until a shutdown signal has been handled: then it stops accepting, closes
    /// WebSockets with 1001, finishes responses being written and returns `Ok`.
    pub fn run(&mut self) -> Result<(), Error> {
        let mut events = Events::with_capacity(1024);
        self.log
            .info(format_args!("listening on http://{}", self.local_addr));
        loop {
            self.flush_pending();
            self.close_queued();
            self.log.flush();
            if self
                .shutdown_at
                .is_some_and(|at| self.conns.is_empty() || self.now >= at)
            {
                self.log.info(format_args!("stopped"));
                self.log.flush();
                return Ok(());
            }
            let idle = self.pending_http.is_empty()
                && self.pending_ws.is_empty()
                && self.round_due_in.is_none()
                && self.reread.is_empty();
            let timeout = if idle {
                self.next_timer().saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
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
                    Token(key) => {
                        if event.is_writable() || event.is_write_closed() || event.is_error() {
                            self.mark_pending(key);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.reread) {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.reread = false;
                    self.on_readable(key);
                }
            }
            self.run_timers();
        }
    }

    /// The next moment a timer needs the loop.
    fn next_timer(&self) -> Instant {
        [
            Some(self.next_sweep),
            self.next_simulation,
            self.accept_paused_until,
            self.shutdown_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_sweep)
    }

    /// Accepts every waiting connection. At the connection cap new clients get 503; when
    /// the process is out of descriptors, accepting pauses briefly instead of spinning.
    fn accept_all(&mut self) {
        if self.accept_paused_until.is_some() {
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
                    if self.fd_warning_until.is_none_or(|t| self.now >= t) {
                        self.log.warn(format_args!(
                            "out of file descriptors ({e}); pausing accept"
                        ));
                    }
                    self.fd_warning_until = Some(self.now + 10 * ACCEPT_BACKOFF);
                    self.accept_paused_until = Some(self.now + ACCEPT_BACKOFF);
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
            entry.insert(Conn::new(stream, peer, self.now + self.config.idle_timeout));
            self.log.debug(format_args!("{peer} connected (#{key})"));
        }
    }

    /// Handles SIGINT/SIGTERM: the first starts a graceful shutdown, a second one ends the
    /// wait at once.
    fn on_signal(&mut self) {
        let Some(signals) = &mut self.signals else {
            return;
        };
        if signals.pending().next().is_none() {
            return;
        }
        if self.shutdown_at.is_some() {
            self.shutdown_at = Some(self.now);
            return;
        }
        self.begin_shutdown();
    }

    /// Stops accepting, closes WebSockets with 1001 and lets HTTP responses in flight finish.
    pub fn begin_shutdown(&mut self) {
        self.log.info(format_args!(
            "shutting down: closing {} connections",
            self.conns.len()
        ));
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_at = Some(self.now + self.config.shutdown_grace);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some((ws, mut wire)) = self.session(key) {
                ws.close(&mut wire, 1001, "server shutting down");
            } else {
                let conn = &mut self.conns[key];
                if let State::Http(parser) = &conn.state {
                    if conn.out_backlog() == 0 && !parser.in_progress() {
                        self.queue_close(key);
                        continue;
                    }
                    conn.close_after_flush = true;
                }
            }
            self.mark_pending(key);
        }
    }

    /// Reads what the connection sent and handles it.
    fn on_readable(&mut self, key: usize) {
        match self.conns.get(key) {
            Some(conn) if conn.closing => {}
            Some(conn) if conn.lingering => self.read_lingering(key),
            Some(conn) if conn.is_websocket() => self.read_ws(key),
            Some(_) => self.read_http(key),
            None => {}
        }
    }

    /// Lists the connection to be read again next turn: it still had input when it used up
    /// its share of this one, and (edge-triggered) no new event will say so.
    fn read_later(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.reread
        {
            conn.reread = true;
            self.reread.push(key);
        }
    }

    /// Reads and answers requests, at most `READS_PER_TURN` reads per turn. Stops (and marks
    /// `read_paused`) while the client is not reading its responses; the flush that drains
    /// them calls this again, which first answers the requests already buffered.
    fn read_http(&mut self, key: usize) {
        if std::mem::take(&mut self.conns[key].read_paused) {
            self.handle_requests(key);
        }
        for _ in 0..READS_PER_TURN {
            let Server { conns, scratch, .. } = self;
            let conn = &mut conns[key];
            if conn.closing
                || conn.is_websocket()
                || conn.read_paused
                || conn.peer_eof
                || conn.close_after_flush
            {
                return;
            }
            if conn.out_backlog() > OUT_HIGH_WATER_BYTES {
                conn.read_paused = true;
                return;
            }
            match conn.stream.read(scratch) {
                Ok(0) => {
                    // The peer is done sending: answer what it sent, then close.
                    conn.peer_eof = true;
                    self.handle_requests(key);
                    return;
                }
                Ok(n) => {
                    conn.inbuf.extend_from_slice(&scratch[..n]);
                    self.handle_requests(key);
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    self.log
                        .debug(format_args!("{} read failed: {e}", conn.peer));
                    self.queue_close(key);
                    return;
                }
            }
        }
        self.read_later(key);
    }

    /// Discards what a closing connection still sends, until it closes its side.
    fn read_lingering(&mut self, key: usize) {
        for _ in 0..READS_PER_TURN {
            let Server { conns, scratch, .. } = self;
            match conns[key].stream.read(scratch) {
                Ok(0) => return self.queue_close(key),
                Ok(_) => {}
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => {}
                Err(_) => return self.queue_close(key),
            }
        }
        self.read_later(key);
    }

    /// Parses and answers every complete request in the connection's buffer, in order,
    /// until a response closes the connection or too much output is waiting.
    fn handle_requests(&mut self, key: usize) {
        let mut start = 0;
        loop {
            let conn = &mut self.conns[key];
            if conn.close_after_flush || conn.closing || conn.lingering {
                break;
            }
            if conn.out_backlog() > OUT_HIGH_WATER_BYTES {
                conn.read_paused = true;
                break;
            }
            let State::Http(parser) = &mut conn.state else {
                break;
            };
            start += parser.blank_prefix(&conn.inbuf[start..]);
            match parser.parse(&conn.inbuf[start..], self.limits) {
                Ok(Parsed::Incomplete { send_continue }) => {
                    if send_continue {
                        conn.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    if conn.inbuf.len() > start
                        && conn.deadline.is_none_or(|(_, d)| d == Deadline::Idle)
                    {
                        conn.deadline =
                            Some((self.now + self.config.request_timeout, Deadline::Request));
                    }
                    break;
                }
                Ok(Parsed::Request(req, used)) => {
                    start += used;
                    conn.deadline = Some((self.now + self.config.idle_timeout, Deadline::Idle));
                    if let Some(upgrade) = self.dispatch(key, &req) {
                        let conn = &mut self.conns[key];
                        let leftover = conn.inbuf.split_off(start);
                        conn.inbuf = Vec::new();
                        self.start_websocket(key, upgrade, leftover);
                        return;
                    }
                }
                Err(err) => {
                    self.log
                        .info(format_args!("{} bad request: {err}", conn.peer));
                    respond(conn, &Response::error(&err), false, false);
                    break;
                }
            }
        }
        let conn = &mut self.conns[key];
        conn.inbuf.drain(..start);
        if conn.inbuf.capacity() > READ_CHUNK_BYTES && conn.inbuf.len() <= READ_CHUNK_BYTES / 4 {
            conn.inbuf.shrink_to(READ_CHUNK_BYTES / 4);
        }
        if conn.peer_eof && !conn.read_paused {
            // Nothing more will arrive: a partial request can never complete.
            conn.close_after_flush = true;
        }
        self.mark_pending(key);
    }

    /// Answers one request. Returns the upgrade to carry out for a WebSocket handshake.
    fn dispatch(&mut self, key: usize, req: &Request) -> Option<(Channel, String)> {
        let outcome = routes::handle(req, &mut self.app);
        let conn = &mut self.conns[key];
        let head_only = req.method() == Method::Head;
        let keep_alive = req.keep_alive && self.shutdown_at.is_none();
        let (status, bytes) = match &outcome {
            Outcome::Respond(r) | Outcome::Publish(r, _) => (r.status, r.body.len()),
            Outcome::Upgrade { .. } => (101, 0),
        };
        self.log.request(
            &conn.peer,
            req.method().as_str(),
            &req.target,
            status,
            bytes,
        );
        match outcome {
            Outcome::Respond(r) => respond(conn, &r, head_only, keep_alive),
            Outcome::Publish(r, update) => {
                respond(conn, &r, head_only, keep_alive);
                self.publish(update);
            }
            Outcome::Upgrade {
                channel,
                accept_key,
            } => return Some((channel, accept_key)),
        }
        None
    }

    /// Sends `101`, turns the connection into a WebSocket subscribed to the category, and
    /// queues the category's current totals. `leftover` holds bytes the client sent after
    /// the handshake; they are the start of its first frames.
    fn start_websocket(
        &mut self,
        key: usize,
        (channel, accept_key): (Channel, String),
        leftover: Vec<u8>,
    ) {
        let conn = &mut self.conns[key];
        conn.out.extend_from_slice(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept_key}\r\n\r\n"
            )
            .as_bytes(),
        );
        conn.state = State::WebSocket(Box::new(WsSession::new(
            leftover,
            self.config.max_ws_message_bytes,
            self.config.ws_queue_bytes,
        )));
        // Liveness: a ping each interval; a client silent for a whole interval is closed.
        conn.deadline = Some((self.now + self.config.ws_ping_interval, Deadline::Ping));
        conn.heard_from = true;
        let name = match channel {
            Channel::Echo => "echo",
            Channel::Orders(Some(cat)) => self.app.store.category_name(cat),
            Channel::Orders(None) => "(unknown category)",
        };
        self.log
            .info(format_args!("{} websocket open #{key} {name}", conn.peer));
        match channel {
            Channel::Orders(category) => self.subscribe(key, category),
            Channel::Echo => {
                if let Some((ws, _)) = self.conns[key].ws() {
                    ws.echo = true;
                }
            }
        }
        self.read_ws(key);
    }

    /// Moves `key`'s subscription to `category` and queues that category's totals. Totals
    /// published to its old category before the move are queued first (unless the session
    /// is conflating: conflated totals of the old category are dropped).
    fn subscribe(&mut self, key: usize, category: Option<CategoryId>) {
        let _ = self.session(key);
        self.subs.subscribe(key, category);
        let Some((ws, mut wire)) = self.conns[key].ws() else {
            return;
        };
        ws.clear_conflated();
        if let Some(cat) = category {
            ws.follow(&self.feeds[cat]);
            for p in self.app.store.products(cat) {
                let frame = ws::text_frame(&routes::total_message(&p.id, p.total));
                ws.push_total(&mut wire, &frame, &p.id, p.total);
            }
        }
        self.mark_pending(key);
    }

    /// Appends the update to its category's feed, framed once, if anyone listens. No
    /// subscriber is touched here: the next round lists every subscriber of the category,
    /// and each takes the new totals when it is flushed.
    fn publish(&mut self, update: Update) {
        if self.subs.of(update.category).is_empty() {
            return;
        }
        let text = update.to_json();
        let feed = &mut self.feeds[update.category];
        feed.push(&text, update.id, update.total);
        if feed.held_bytes() > self.config.ws_queue_bytes {
            self.hand_out(update.category);
        }
        if self.round_due_in.is_none() {
            // After the WebSockets already waiting: each of them takes this total too.
            self.round_due_in = Some(self.pending_ws.len());
        }
    }

    /// Every subscriber of `cat` takes the feed now, into its own queue (conflating past its
    /// budget, as it would have at its flush), and the feed is emptied. Orders pouring in
    /// faster than a round goes by cost one pass over the subscribers per queue budget of
    /// updates, and memory stays bounded.
    fn hand_out(&mut self, cat: CategoryId) {
        let feed = &self.feeds[cat];
        for &key in self.subs.of(cat) {
            let conn = &mut self.conns[key];
            if let Some((ws, mut wire)) = conn.ws() {
                ws.catch_up_queued(&mut wire, feed);
            }
            if !conn.pending && !conn.closing {
                conn.pending = true;
                self.pending_ws.push_back(key);
            }
        }
        self.feeds[cat].clear();
    }

    /// Starts a round of WebSocket flushes: every subscriber of a category published to
    /// since the last round is listed to flush, unless it is listed already.
    fn start_round(&mut self) {
        self.round_due_in = None;
        for (cat, feed) in self.feeds.iter_mut().enumerate() {
            if !feed.new_round() {
                continue;
            }
            for &key in self.subs.of(cat) {
                let conn = &mut self.conns[key];
                if !conn.pending && !conn.closing {
                    conn.pending = true;
                    self.pending_ws.push_back(key);
                }
            }
        }
    }

    /// The WebSocket session of `key`, with the socket it talks through, caught up with its
    /// category's feed: whatever is queued next goes out after every total published before.
    fn session(&mut self, key: usize) -> Option<(&mut WsSession, Wire<'_>)> {
        let feed = self.subs.category_of(key).map(|cat| &self.feeds[cat]);
        let (ws, mut wire) = self.conns.get_mut(key)?.ws()?;
        if let Some(feed) = feed {
            ws.catch_up(&mut wire, feed);
        }
        Some((ws, wire))
    }

    /// Reads WebSocket messages (at most `MESSAGES_PER_TURN` per turn), answering commands.
    /// A protocol violation is answered with its close code before the connection closes.
    fn read_ws(&mut self, key: usize) {
        for _ in 0..MESSAGES_PER_TURN {
            let conn = &mut self.conns[key];
            if conn.closing || conn.lingering {
                return;
            }
            let Some((ws, mut wire)) = self.session(key) else {
                return;
            };
            match ws.read(&mut wire) {
                Ok(incoming @ (Incoming::Text(_) | Incoming::Binary(_))) if ws.echo => {
                    let msg = match incoming {
                        Incoming::Text(t) => Message::Text(t),
                        Incoming::Binary(b) => Message::Binary(b),
                        _ => unreachable!("matched above"),
                    };
                    if !ws.push_message(&mut wire, msg) {
                        // The echo client is not reading; its queue is full.
                        ws.close(&mut wire, 1008, "echo queue full");
                    }
                    self.conns[key].heard_from = true;
                    self.mark_pending(key);
                }
                Ok(Incoming::Text(text)) => {
                    self.conns[key].heard_from = true;
                    self.on_ws_text(key, text.as_str());
                }
                Ok(Incoming::Binary(_)) => {
                    self.conns[key].heard_from = true;
                    self.reply_error(
                        key,
                        "binary messages are not supported; send JSON text".into(),
                    );
                }
                Ok(Incoming::Control) => {
                    self.conns[key].heard_from = true;
                    self.mark_pending(key);
                }
                Ok(Incoming::Blocked) => return self.mark_pending(key),
                Err(closed) => {
                    match closed.code {
                        Some(code) => {
                            // tungstenite gives up without telling the peer why: tell it,
                            // then linger so unread input does not turn the close into a reset.
                            ws.fail(&mut wire, code, &closed.reason);
                            self.log.info(format_args!(
                                "{} websocket #{key} close {code}: {}",
                                self.conns[key].peer, closed.reason
                            ));
                            self.linger(key);
                        }
                        None => {
                            self.log.debug(format_args!(
                                "{} websocket #{key} ended: {}",
                                self.conns[key].peer, closed.reason
                            ));
                            self.queue_close(key);
                        }
                    }
                    return;
                }
            }
        }
        self.mark_pending(key);
        self.read_later(key);
    }

    /// Handles one text message from a subscriber.
    fn on_ws_text(&mut self, key: usize, text: &str) {
        match ws::parse_command(text) {
            Ok(Command::UpdateCategory(name)) => {
                let category = self.app.store.category(&name);
                self.log
                    .debug(format_args!("websocket #{key} update-category {name}"));
                self.subscribe(key, category);
            }
            Err(msg) => {
                let shown: String = text.chars().take(200).collect();
                self.log.warn(format_args!(
                    "{} websocket #{key} message {shown:?}: {msg}",
                    self.conns[key].peer
                ));
                self.reply_error(key, msg);
            }
        }
    }

    /// Sends `{"error": msg}` to a WebSocket client.
    fn reply_error(&mut self, key: usize, msg: String) {
        if let Some((ws, mut wire)) = self.session(key) {
            ws.push_text(&mut wire, serde_json::json!({ "error": msg }).to_string());
        }
        self.mark_pending(key);
    }

    /// Lists the connection for a flush before the next poll.
    fn mark_pending(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.pending
            && !conn.closing
        {
            conn.pending = true;
            if conn.is_websocket() {
                self.pending_ws.push_back(key);
            } else {
                self.pending_http.push(key);
            }
        }
    }

    /// Flushes every pending HTTP connection, then up to [`WS_FLUSHES_PER_TURN`] pending
    /// WebSockets. Responses go first: a client waiting on its answer (the POST that caused
    /// this turn's updates) gets it before the fan-out writes, and its next request can
    /// arrive while they go out, to be batched with others into the next writes.
    fn flush_pending(&mut self) {
        let mut http = std::mem::take(&mut self.pending_http);
        for &key in &http {
            self.flush_one(key);
        }
        // Keep the allocation, with anything listed while flushing.
        http.clear();
        http.append(&mut self.pending_http);
        self.pending_http = http;
        for _ in 0..WS_FLUSHES_PER_TURN {
            if self.round_due_in == Some(0) {
                self.start_round();
            }
            let Some(key) = self.pending_ws.pop_front() else {
                break;
            };
            if let Some(n) = &mut self.round_due_in {
                *n -= 1;
            }
            self.flush_one(key);
        }
    }

    /// Flushes one connection. One that drains and must close starts closing; one whose
    /// reading was paused for backpressure resumes.
    fn flush_one(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.pending = false;
        if conn.closing {
            return;
        }
        if conn.is_websocket() {
            // The session takes what was published since it last did.
            let _ = self.session(key);
        }
        let conn = &mut self.conns[key];
        match conn.flush() {
            Ok(Flushed::Blocked) => {}
            Ok(Flushed::All) if conn.close_after_flush && !conn.lingering => self.linger(key),
            Ok(Flushed::All) if conn.read_paused => self.on_readable(key),
            Ok(Flushed::All) => {}
            Err(e) => {
                self.log.debug(format_args!("{} closed: {e}", conn.peer));
                self.queue_close(key);
            }
        }
    }

    /// Half-closes the connection after its last bytes and waits briefly for the peer to
    /// close, so that unread input does not turn our close into a reset that destroys the
    /// response before the peer reads it. A lingering connection receives no more updates.
    fn linger(&mut self, key: usize) {
        self.subs.unsubscribe(key);
        let conn = &mut self.conns[key];
        if conn.stream.shutdown(std::net::Shutdown::Write).is_err() {
            self.queue_close(key);
            return;
        }
        conn.lingering = true;
        conn.inbuf = Vec::new();
        conn.deadline = Some((self.now + LINGER, Deadline::Linger));
        self.read_lingering(key);
    }

    /// Marks the connection to be closed at the end of this turn. It leaves the subscriber
    /// index at once: a closing connection takes no more totals.
    fn queue_close(&mut self, key: usize) {
        self.subs.unsubscribe(key);
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.closing
        {
            conn.closing = true;
            self.closing.push(key);
        }
    }

    /// Closes the marked connections: deregisters them and removes them from the slab (they
    /// left the subscriber index when marked), so a reused key inherits nothing.
    fn close_queued(&mut self) {
        for key in std::mem::take(&mut self.closing) {
            let mut conn = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if conn.is_websocket() {
                self.log
                    .info(format_args!("{} websocket closed #{key}", conn.peer));
            } else {
                self.log
                    .debug(format_args!("{} disconnected (#{key})", conn.peer));
            }
        }
    }

    /// Timers: accept back-off, the simulator, and the deadline sweep (a pass over the
    /// connections without any syscall).
    fn run_timers(&mut self) {
        let now = self.now;
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            self.accept_all();
        }
        if let (Some(at), Some(period)) = (self.next_simulation, self.config.simulate)
            && now >= at
        {
            self.next_simulation = Some(now + period);
            self.simulate_order();
        }
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + self.sweep_every;
        let expired: Vec<(usize, Deadline)> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.closing)
            .filter_map(|(k, c)| c.deadline.filter(|(at, _)| now >= *at).map(|(_, d)| (k, d)))
            .collect();
        for (key, deadline) in expired {
            let conn = &mut self.conns[key];
            conn.deadline = None;
            match deadline {
                Deadline::Idle | Deadline::Linger => self.queue_close(key),
                Deadline::Ping if !std::mem::take(&mut conn.heard_from) => {
                    // Nothing, not even the pong to our last ping, for a whole interval.
                    self.log.info(format_args!(
                        "{} websocket #{key} did not answer a ping; closing",
                        conn.peer
                    ));
                    if let Some((ws, mut wire)) = self.session(key) {
                        ws.close(&mut wire, 1001, "ping timeout");
                    }
                    self.linger(key);
                }
                Deadline::Ping => {
                    conn.deadline = Some((now + self.config.ws_ping_interval, Deadline::Ping));
                    if let Some((ws, mut wire)) = self.session(key) {
                        ws.ping(&mut wire);
                    }
                    self.mark_pending(key);
                }
                Deadline::Request => {
                    let err = HttpError::new(
                        408,
                        format!(
                            "request not received within {} ms",
                            self.config.request_timeout.as_millis()
                        ),
                    );
                    self.log.info(format_args!("{} {err}", conn.peer));
                    respond(conn, &Response::error(&err), false, false);
                    self.mark_pending(key);
                }
            }
        }
    }

    /// The seed's simulator: a random product gains 1 to 7 orders, pushed like a POST.
    fn simulate_order(&mut self) {
        let count = self.app.store.product_count();
        if count == 0 {
            return;
        }
        let n = (self.next_random() % count as u64) as usize;
        let amount = 1 + self.next_random() % 7;
        if let Some((category, product)) = self.app.store.simulate_order(n, amount) {
            let update = Update {
                category,
                id: product.id.clone(),
                total: product.total,
            };
            self.log.debug(format_args!(
                "simulated {amount} orders of {}: total {}",
                update.id, update.total
            ));
            self.publish(update);
        }
    }

    /// xorshift64: enough randomness for the simulator, without a dependency.
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// Appends a response to the connection's output. Without keep-alive the connection closes
/// once the response is written, and no further request is read.
fn respond(conn: &mut Conn, response: &Response, head_only: bool, keep_alive: bool) {
    response.write_to(&mut conn.out, head_only, keep_alive);
    if !keep_alive {
        conn.close_after_flush = true;
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

/// Raises the soft limit on open files to the hard limit; returns the limit in force.
fn raise_fd_limit() -> u64 {
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

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.conns.len())
            .finish()
    }
}
