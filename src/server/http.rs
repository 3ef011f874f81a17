//! HTTP connections: reading, parsing pipelined requests, routing them, and answering the
//! requests held while the backend applies their change.

use std::io::Read;

use super::writes::LINGER;
use super::{Next, Server};
use crate::conn::{Conn, Deadline, Held, Phase, Proto};
use crate::error::HttpError;
use crate::http::{Method, Parsed, Request, Response};
use crate::metrics::Route;
use crate::outbox::{interrupted, would_block};
use crate::routes::{self, Channel, Outcome};
use crate::state::{Applied, CategoryId, Refusal, Ticket};

/// Bytes read from a socket per `read` call.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most reads of one connection per loop turn, so that a client that never stops sending
/// cannot starve the others.
pub const READS_PER_TURN: usize = 16;
/// Stop reading a connection's requests while this much output waits for it.
const OUT_HIGH_WATER_BYTES: usize = 256 * 1024;

/// What became of one request.
enum Dispatched {
    /// Its response is queued.
    Answered,
    /// Its change was submitted; the response waits for the result.
    Held,
    /// A WebSocket handshake to carry out.
    Upgrade(Channel, String),
    /// An event stream to start, with its head.
    Events(CategoryId, Response),
}

impl Server {
    /// Queues `response` to `req` on connection `key`, counts it, and logs it: the request
    /// line, and for a refusal an operator should see (a 403), why.
    fn send(&mut self, key: usize, req: &Request, response: &Response, keep_alive: bool) {
        self.answered(key, req, response.status, response.body.len());
        let conn = &mut self.conns[key];
        if let Some(why) = &response.refused_because {
            self.log.warn(format_args!("{} refused: {why}", conn.peer));
        }
        conn.respond(response, req.method() == Method::Head, keep_alive);
    }

    /// Counts and logs the answer to a request: its `status` and body `bytes`.
    fn answered(&mut self, key: usize, req: &Request, status: u16, bytes: usize) {
        let route = routes::route_of(req, self.backend.catalog());
        self.counters.request(route, status);
        let (peer, method) = (&self.conns[key].peer, req.method().as_str());
        self.log.request(peer, method, &req.target, status, bytes);
    }

    /// Answers the requests already buffered, then reads and answers more, at most
    /// `READS_PER_TURN` reads. Reading stops while the client does not read its responses
    /// (`paused`) and once the connection drains; while a request is held, what follows it
    /// is read (up to about two reads' worth) but not parsed.
    pub(super) fn read_http(&mut self, key: usize) -> Next {
        let mut next = Next::Idle;
        // Requests left in the buffer (behind a held request, or when reading was paused),
        // or a peer that finished sending meanwhile, are dealt with before reading more.
        if let Some(http) = self.conns[key].http()
            && (!http.inbuf.is_empty() || http.peer_eof)
        {
            next = self.handle_requests(key);
        }
        for _ in 0..READS_PER_TURN {
            let Server { conns, scratch, .. } = self;
            let conn = &mut conns[key];
            let backlog = conn.out.len();
            let Proto::Http(http) = &mut conn.proto else {
                return next;
            };
            if conn.phase != Phase::Open || http.paused || http.peer_eof {
                return next;
            }
            if backlog > OUT_HIGH_WATER_BYTES {
                http.paused = true;
                return next;
            }
            if http.held.is_some() && http.inbuf.len() >= READ_CHUNK_BYTES {
                // Enough waits behind the held request. The rest of the socket, which no
                // new event will announce, is read once the buffer is: the answer finds
                // the buffer not empty and lists the connection to be read again.
                return next;
            }
            match conn.stream.read(scratch) {
                Ok(0) => {
                    // The peer is done sending: answer what it sent, then close.
                    http.peer_eof = true;
                    return self.handle_requests(key);
                }
                Ok(n) => {
                    http.inbuf.extend_from_slice(&scratch[..n]);
                    next = self.handle_requests(key);
                }
                Err(e) if would_block(&e) => return next,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    self.log
                        .debug(format_args!("{} read failed: {e}", conn.peer));
                    return Next::Close;
                }
            }
        }
        Next::Reread
    }

    /// Parses and answers every complete request in the connection's buffer, in order,
    /// until one is held, a response ends the connection, or too much output waits.
    fn handle_requests(&mut self, key: usize) -> Next {
        let mut start = 0;
        loop {
            let conn = &mut self.conns[key];
            let backlog = conn.out.len();
            let Proto::Http(http) = &mut conn.proto else {
                break;
            };
            if conn.phase != Phase::Open || http.held.is_some() {
                break;
            }
            if backlog > OUT_HIGH_WATER_BYTES {
                http.paused = true;
                break;
            }
            start += http.parser.blank_prefix(&http.inbuf[start..]);
            match http.parser.parse(&http.inbuf[start..], self.limits) {
                Ok(Parsed::Incomplete { send_continue }) => {
                    if send_continue {
                        conn.out.push(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    if http.inbuf.len() > start
                        && conn.deadline.is_none_or(|(_, d)| d == Deadline::Idle)
                    {
                        let at = self.now + self.config.request_timeout;
                        conn.deadline = Some((at, Deadline::Request));
                    }
                    break;
                }
                Ok(Parsed::Request(req, used)) => {
                    start += used;
                    conn.deadline = Some((self.now + self.config.idle_timeout, Deadline::Idle));
                    match self.dispatch(key, req) {
                        Dispatched::Answered => {}
                        Dispatched::Held => break,
                        Dispatched::Events(category, head) => {
                            return self.start_events(key, category, &head);
                        }
                        Dispatched::Upgrade(channel, accept_key) => {
                            let http = self.conns[key].http().expect("still HTTP");
                            let leftover = http.inbuf.split_off(start);
                            return self.start_websocket(key, channel, &accept_key, leftover);
                        }
                    }
                }
                Err(err) => {
                    self.log
                        .info(format_args!("{} bad request: {err}", conn.peer));
                    self.counters.request(Route::Other, err.status());
                    conn.respond(&Response::error(&err), false, false);
                    break;
                }
            }
        }
        let conn = &mut self.conns[key];
        let Proto::Http(http) = &mut conn.proto else {
            return Next::Flush;
        };
        http.inbuf.drain(..start);
        if http.inbuf.capacity() > READ_CHUNK_BYTES && http.inbuf.len() <= READ_CHUNK_BYTES / 4 {
            http.inbuf.shrink_to(READ_CHUNK_BYTES / 4);
        }
        if http.peer_eof && !http.paused && http.held.is_none() && conn.phase == Phase::Open {
            // Nothing more will arrive: a partial request can never complete.
            conn.phase = Phase::Draining;
        }
        Next::Flush
    }

    /// Routes one request: answers it, holds it for the backend (or for `--latency`), or
    /// hands back the stream to start.
    fn dispatch(&mut self, key: usize, req: Box<Request>) -> Dispatched {
        if let Some((min, max)) = self.config.latency
            && routes::is_api(&req, self.backend.catalog())
        {
            let conn = &mut self.conns[key];
            let until = self.timers.delay(self.now, min, max, key, conn.id);
            // Idle from the moment it is answered, not from now.
            conn.deadline = Some((until + self.config.idle_timeout, Deadline::Idle));
            let http = conn.http().expect("requests come from HTTP connections");
            http.held = Some(Held::Delayed(req));
            return Dispatched::Held;
        }
        self.route(key, req)
    }

    /// Handles a request whose `--latency` has passed, then what its connection sent
    /// after it. A connection that has closed (or whose slab key now holds another one)
    /// is skipped.
    pub(super) fn delay_passed(&mut self, key: usize, conn_id: u64) -> Next {
        let Some(http) = super::live(&mut self.conns, key, conn_id).and_then(Conn::http) else {
            return Next::Idle;
        };
        let Some(Held::Delayed(req)) = http.held.take() else {
            return Next::Idle;
        };
        match self.route(key, req) {
            Dispatched::Answered => Next::Reread,
            Dispatched::Held => Next::Idle,
            Dispatched::Events(category, head) => self.start_events(key, category, &head),
            Dispatched::Upgrade(channel, accept_key) => {
                let http = self.conns[key].http().expect("still HTTP");
                let leftover = std::mem::take(&mut http.inbuf);
                self.start_websocket(key, channel, &accept_key, leftover)
            }
        }
    }

    /// Routes one request now: see [`Server::dispatch`].
    fn route(&mut self, key: usize, req: Box<Request>) -> Dispatched {
        let outcome = if self.fails_on_purpose(&req) {
            let percent = self.config.fail_rate_percent;
            Outcome::Respond(routes::injected_failure(&req, &self.app, percent))
        } else {
            routes::handle(&req, &self.app, self.backend.as_ref())
        };
        let keep_alive = req.keep_alive && !self.timers.shutting_down();
        match outcome {
            Outcome::Respond(r) => {
                self.send(key, &req, &r, keep_alive);
                Dispatched::Answered
            }
            Outcome::Metrics => {
                let r = self.metrics();
                self.send(key, &req, &r, keep_alive);
                Dispatched::Answered
            }
            Outcome::Upgrade {
                channel,
                accept_key,
            } => {
                self.answered(key, &req, 101, 0);
                Dispatched::Upgrade(channel, accept_key)
            }
            Outcome::Events { category, head } => {
                self.answered(key, &req, 200, 0);
                if req.method() == Method::Head {
                    // The head alone: the body of a stream ends only with the connection.
                    let conn = &mut self.conns[key];
                    head.write_stream_head(conn.out.tail());
                    conn.phase = Phase::Draining;
                    return Dispatched::Answered;
                }
                Dispatched::Events(category, head)
            }
            Outcome::Apply(op, then) => {
                let conn = &mut self.conns[key];
                let ticket = Ticket {
                    key,
                    conn_id: conn.id,
                };
                match &req.idempotency_key {
                    Some(name) => self.backend.submit_named(Some(ticket), op, name),
                    None => self.backend.submit(Some(ticket), op),
                }
                let http = conn.http().expect("requests come from HTTP connections");
                http.held = Some(Held::Applying { req, then });
                Dispatched::Held
            }
        }
    }

    /// `--fail-rate`: whether this API request is the share to fail (503) on purpose.
    fn fails_on_purpose(&mut self, req: &Request) -> bool {
        let percent = u64::from(self.config.fail_rate_percent);
        percent > 0
            && routes::is_api(req, self.backend.catalog())
            && self.timers.next_random() % 100 < percent
    }

    /// Answers the request held for `ticket` with the backend's result. A result whose
    /// connection has closed (or whose slab key now holds another connection) is dropped.
    pub(super) fn answer_held(&mut self, ticket: Ticket, result: Result<Applied, Refusal>) -> Next {
        let shutting_down = self.timers.shutting_down();
        let Some(http) =
            super::live(&mut self.conns, ticket.key, ticket.conn_id).and_then(Conn::http)
        else {
            return Next::Idle;
        };
        let Some(Held::Applying { req, then }) = http.held.take() else {
            return Next::Idle;
        };
        // Requests pipelined behind it wait in the buffer (and, when it is full, the
        // socket); the peer may have finished.
        let more = !http.inbuf.is_empty() || http.peer_eof;
        let response = routes::finish(&req, &self.app, self.backend.catalog(), then, result);
        self.send(
            ticket.key,
            &req,
            &response,
            req.keep_alive && !shutting_down,
        );
        if more { Next::Reread } else { Next::Flush }
    }

    /// A request that did not arrive in time: 408, then the connection drains.
    pub(super) fn request_timed_out(&mut self, key: usize) -> Next {
        let conn = &mut self.conns[key];
        let err = HttpError::new(
            408,
            format!(
                "request not received within {} ms",
                self.config.request_timeout.as_millis()
            ),
        );
        self.log.info(format_args!("{} {err}", conn.peer));
        self.counters.request(Route::Other, err.status());
        conn.respond(&Response::error(&err), false, false);
        // A peer that does not read its 408 either is not waited for long.
        conn.deadline = Some((self.now + LINGER, Deadline::Idle));
        Next::Flush
    }
}
