//! Time: connection deadlines (a sweep over the connections, without a syscall), the accept
//! back-off, the simulator, and the graceful shutdown.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::{Next, Server};
use crate::config::Config;
use crate::conn::{Deadline, Phase, Proto};
use crate::state::Op;

/// When the loop must wake up for something other than a socket.
#[derive(Debug)]
pub struct Timers {
    sweep_every: Duration,
    next_sweep: Instant,
    next_simulation: Option<Instant>,
    /// Accepting stopped (out of descriptors) until then.
    pub accept_paused_until: Option<Instant>,
    /// No new out-of-descriptors warning before this (set again at each retry).
    pub fd_warning_until: Option<Instant>,
    /// Shutting down: the loop ends when every connection is gone, or at this moment.
    shutdown_at: Option<Instant>,
    /// Shutting down, and the WebSockets are still to be closed.
    websockets_to_close: bool,
    /// `--latency`: requests held until their moment, as (moment, slab key, connection id).
    delayed: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// `--ws-drop-ms`: streams to end at their moment, the same way.
    drops: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// The xorshift64 state of the simulator and of everything else done at random.
    rng: u64,
}

impl Timers {
    pub fn new(config: &Config, now: Instant) -> Timers {
        let shortest = config
            .request_timeout
            .min(config.idle_timeout)
            .min(config.ws_ping_interval);
        let sweep_every = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Timers {
            sweep_every,
            next_sweep: now + sweep_every,
            next_simulation: config.simulate.map(|period| now + period),
            accept_paused_until: None,
            fd_warning_until: None,
            shutdown_at: None,
            websockets_to_close: false,
            delayed: BinaryHeap::new(),
            drops: BinaryHeap::new(),
            rng: seed | 1,
        }
    }

    /// The next moment a timer needs the loop.
    pub fn next(&self) -> Instant {
        [
            Some(self.next_sweep),
            self.next_simulation,
            self.accept_paused_until,
            self.shutdown_at,
            self.delayed.peek().map(|Reverse((at, ..))| *at),
            self.drops.peek().map(|Reverse((at, ..))| *at),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_sweep)
    }

    /// True once a shutdown has started.
    pub fn shutting_down(&self) -> bool {
        self.shutdown_at.is_some()
    }

    /// True when a shutdown is complete: every connection is gone, or the grace is over.
    pub fn stopped(&self, now: Instant, no_connections: bool) -> bool {
        self.shutdown_at
            .is_some_and(|at| no_connections || now >= at)
    }

    /// xorshift64: enough randomness for the simulator, without a dependency.
    pub fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// A uniform random number in `0.0..1.0`.
    fn unit(&mut self) -> f64 {
        (self.next_random() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Holds the request of connection `key` (`conn_id`) for a random time from `min` to
    /// `max`, and returns until when; [`Timers::due`] hands it back then.
    pub fn delay(
        &mut self,
        now: Instant,
        min: Duration,
        max: Duration,
        key: usize,
        conn_id: u64,
    ) -> Instant {
        let until = now + min + (max - min).mul_f64(self.unit());
        self.delayed.push(Reverse((until, key, conn_id)));
        until
    }

    /// `--ws-drop-ms`: the stream of connection `key` (`conn_id`), opened now, ends at
    /// random with `mean` lifetime (exponentially distributed, as if each moment had the
    /// same small chance); [`Timers::due`] hands it back then.
    pub fn drop_later(&mut self, now: Instant, mean: Duration, key: usize, conn_id: u64) {
        // 1 - unit() is in (0, 1]: its logarithm is finite.
        let lifetime = mean.mul_f64(-(1.0 - self.unit()).ln()).min(mean * 20);
        self.drops.push(Reverse((now + lifetime, key, conn_id)));
    }

    /// The next held request (`delayed`) or stream to drop whose time has come, as (slab
    /// key, connection id).
    fn due(
        heap: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
        now: Instant,
    ) -> Option<(usize, u64)> {
        let Reverse((at, key, conn_id)) = *heap.peek()?;
        if at > now {
            return None;
        }
        heap.pop();
        Some((key, conn_id))
    }
}

impl Server {
    /// Timers: accept back-off, the simulator, and the deadline sweep.
    pub(super) fn run_timers(&mut self) {
        let now = self.now;
        if self.timers.accept_paused_until.is_some_and(|t| now >= t) {
            self.timers.accept_paused_until = None;
            self.accept_all();
        }
        if let (Some(at), Some(period)) = (self.timers.next_simulation, self.config.simulate)
            && now >= at
            && !self.timers.shutting_down()
        {
            self.timers.next_simulation = Some(now + period);
            self.simulate_order();
        }
        while let Some((key, conn_id)) = Timers::due(&mut self.timers.delayed, now) {
            let next = self.delay_passed(key, conn_id);
            self.act(key, next);
        }
        while let Some((key, conn_id)) = Timers::due(&mut self.timers.drops, now) {
            let next = self.drop_stream(key, conn_id);
            self.act(key, next);
        }
        if now < self.timers.next_sweep {
            return;
        }
        self.timers.next_sweep = now + self.timers.sweep_every;
        let expired: Vec<(usize, Deadline)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase != Phase::Closing)
            .filter_map(|(k, c)| c.deadline.filter(|(at, _)| now >= *at).map(|(_, d)| (k, d)))
            .collect();
        for (key, deadline) in expired {
            self.conns[key].deadline = None;
            let next = self.deadline_passed(key, deadline);
            self.act(key, next);
        }
    }

    /// `--ws-drop-ms`: ends the stream of `key` if it is still the one its moment was
    /// drawn for, WebSockets with 1012 ("service restart"), as a server going away would.
    fn drop_stream(&mut self, key: usize, conn_id: u64) -> Next {
        let Some(conn) = super::live(&mut self.conns, key, conn_id) else {
            return Next::Idle;
        };
        if conn.phase != Phase::Open || !conn.is_stream() {
            return Next::Idle;
        }
        self.log.info(format_args!(
            "{} stream #{key} dropped on purpose (--ws-drop-ms)",
            conn.peer
        ));
        self.end_stream(key, 1012, "dropped on purpose (--ws-drop-ms)")
    }

    /// What a connection whose deadline passed does next.
    fn deadline_passed(&mut self, key: usize, deadline: Deadline) -> Next {
        let ping_every = self.config.ws_ping_interval;
        let conn = &mut self.conns[key];
        match deadline {
            Deadline::Idle | Deadline::Linger => Next::Close,
            Deadline::Request => self.request_timed_out(key),
            Deadline::Ping if conn.phase != Phase::Open => Next::Close,
            Deadline::Ping => {
                if let Proto::Events(events) = &mut conn.proto {
                    if events.keep_alive(&mut conn.out) {
                        conn.deadline = Some((self.now + ping_every, Deadline::Ping));
                        return Next::Flush;
                    }
                    self.log.info(format_args!(
                        "{} event stream #{key} took nothing for a keep-alive interval; closing",
                        conn.peer
                    ));
                    return self.drain_stream(key);
                }
                let Some((session, mut wire)) = conn.ws() else {
                    return Next::Close;
                };
                if std::mem::take(&mut session.heard_from) {
                    session.ping(&mut wire);
                    conn.deadline = Some((self.now + ping_every, Deadline::Ping));
                    return Next::Flush;
                }
                // Nothing, not even the pong to our last ping, for a whole interval.
                self.log.info(format_args!(
                    "{} websocket #{key} did not answer a ping; closing",
                    conn.peer
                ));
                self.close_ws(key, 1001, "ping timeout");
                self.drain_stream(key)
            }
        }
    }

    /// The seed's simulator: a random product gains 1 to 7 orders, submitted like a POST.
    fn simulate_order(&mut self) {
        let count = self.backend.catalog().product_count();
        if count == 0 {
            return;
        }
        let n = (self.timers.next_random() % count as u64) as usize;
        let amount = 1 + (self.timers.next_random() % 7) as i64;
        let Some(product) = self.backend.catalog().nth_product(n) else {
            return;
        };
        let id = product.id.clone();
        self.log
            .debug(format_args!("simulated {amount} orders of {id}"));
        self.backend.submit(None, Op::AddAmount { id, amount });
    }

    /// Handles SIGINT/SIGTERM: the first starts a graceful shutdown, a second one ends the
    /// wait at once.
    pub(super) fn on_signal(&mut self) {
        let Some(signals) = &mut self.signals else {
            return;
        };
        if signals.pending().next().is_none() {
            return;
        }
        if self.timers.shutting_down() {
            self.timers.shutdown_at = Some(self.now);
            return;
        }
        self.begin_shutdown();
    }

    /// Stops accepting, lets HTTP responses in flight (held ones included, those held by
    /// `--latency` at once) finish, and
    /// closes WebSockets with 1001 once every change acknowledged has been published to
    /// them (see [`Server::close_websockets_if_due`]).
    pub fn begin_shutdown(&mut self) {
        self.log.info(format_args!(
            "shutting down: closing {} connections",
            self.conns.len()
        ));
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.timers.shutdown_at = Some(self.now + self.config.shutdown_grace);
        self.timers.websockets_to_close = true;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let next = self.shut_down(key);
            self.act(key, next);
        }
        // Requests held by `--latency` are handled now rather than after the grace.
        let delayed: Vec<(usize, u64)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_delayed())
            .map(|(k, c)| (k, c.id))
            .collect();
        for (key, conn_id) in delayed {
            let next = self.delay_passed(key, conn_id);
            self.act(key, next);
        }
    }

    /// One HTTP connection at shutdown: closed when nothing is under way; otherwise it
    /// drains, its held request answered with `Connection: close`. A request still in its
    /// buffer is not answered (its client sees the connection end without an answer, so
    /// nothing it did not hear about is counted as acknowledged).
    fn shut_down(&mut self, key: usize) -> Next {
        let conn = &mut self.conns[key];
        if conn.phase != Phase::Open || conn.is_stream() {
            return Next::Idle;
        }
        let out_empty = conn.out.is_empty();
        let Some(http) = conn.http() else {
            return Next::Close;
        };
        let idle =
            out_empty && http.held.is_none() && http.inbuf.is_empty() && !http.parser.in_progress();
        if idle {
            return Next::Close;
        }
        conn.phase = Phase::Draining;
        Next::Flush
    }

    /// At shutdown, closes every WebSocket with 1001 (after every total already published
    /// to it) once no request is held: the updates of the changes answered during the
    /// shutdown have been published first, so a subscriber hears of every acknowledged one.
    pub(super) fn close_websockets_if_due(&mut self) {
        if !self.timers.websockets_to_close || self.conns.iter().any(|(_, c)| c.is_held()) {
            return;
        }
        self.timers.websockets_to_close = false;
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_stream() && c.phase == Phase::Open)
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            let next = self.end_stream(key, 1001, "server shutting down");
            self.act(key, next);
        }
    }
}
