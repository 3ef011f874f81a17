//! The Redis backend (`--redis redis://HOST:PORT[/DB]`): Redis holds the catalog and the
//! totals, and any number of mock-srv processes serve them. Each process keeps a copy of the
//! catalog for reads, kept current by a subscription; every change is one Lua script
//! ([`scripts`]) that bumps the category's sequence and publishes the new total, and every
//! process, the one that took the POST included, fans out what its subscription hears.
//!
//! Two connections on the loop's poll, as non-blocking as the clients': one for commands
//! (pipelined: Redis answers in order, so each reply belongs to the oldest entry of
//! `waiting`), one for the subscription. Never miss, never count twice: subscribe, wait for
//! the confirmation, then take a snapshot `{epoch, seq, totals}` of each category; drop
//! messages at or below the snapshot's sequence, apply the next one, and take a new
//! snapshot on a gap or a new epoch. A periodic check of each category's sequence catches a
//! subscription that stopped delivering without closing.
//!
//! When Redis is unreachable, new changes get 503 at once, the ones in flight are sent again
//! with the same request id once it is back (the script remembers ids: exactly once) until
//! their deadline, WebSockets stay open, and each link reconnects with backoff and jitter.

mod link;
pub mod scripts;

use std::collections::VecDeque;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use redis_protocol::resp2::types::OwnedFrame;

use crate::log::Log;
use crate::outbox::Flushed;
use crate::state::catalog::{MAX_PRODUCTS_PER_CATEGORY, MAX_TOTAL, Product};
use crate::state::{
    Applied, Backend, Catalog, CategoryId, Done, NewProduct, Op, Refusal, Ticket, Update,
};
use link::{Link, Reply, bytes, integer, text};
use scripts::Keys;

/// The command connection's token on the loop's poll.
pub const COMMANDS: Token = Token(usize::MAX - 2);
/// The subscription's token.
pub const SUBSCRIPTION: Token = Token(usize::MAX - 3);

/// How long a change whose connection dropped is sent again before it is answered 503.
const CHANGE_DEADLINE: Duration = Duration::from_secs(5);
/// Reconnect back-off: the first wait, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long to wait before asking again while Redis loads its data (`LOADING`).
const LOADING_PAUSE: Duration = Duration::from_millis(100);
/// How long to wait before asking again after a catch-up Redis refused.
const TROUBLE_PAUSE: Duration = Duration::from_secs(1);
/// A command unanswered for this long means Redis is frozen or cut off: the link is
/// dropped, and what was in flight is sent again on a new one.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Start-up waits this long for Redis to answer.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Where Redis is, from `redis://HOST[:PORT][/DB]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub db: u32,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let bad = || format!("{url:?} is not redis://HOST[:PORT][/DB]");
        let rest = url.strip_prefix("redis://").ok_or_else(bad)?;
        let (authority, db) = match rest.split_once('/') {
            Some((a, "")) => (a, 0),
            Some((a, db)) => (a, db.parse().map_err(|_| bad())?),
            None => (rest, 0),
        };
        if authority.contains('@') {
            return Err(format!("{url:?}: passwords are not supported"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                (h, p.parse().map_err(|_| bad())?)
            }
            _ => (authority, 6379),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Url {
            host: host.to_string(),
            port,
            db,
        })
    }
}

/// The scripts' SHA1s, as Redis computed them (`SCRIPT LOAD`).
#[derive(Debug, Default)]
struct Shas {
    order: String,
    product: String,
    snapshot: String,
}

/// The scripts sent by SHA1.
#[derive(Debug, Clone, Copy)]
enum Script {
    Order,
    Product,
    Snapshot,
}

impl Script {
    const ALL: [Script; 3] = [Script::Order, Script::Product, Script::Snapshot];

    fn text(self) -> &'static str {
        match self {
            Script::Order => scripts::ORDER,
            Script::Product => scripts::PRODUCT,
            Script::Snapshot => scripts::SNAPSHOT,
        }
    }

    fn sha(self, shas: &mut Shas) -> &mut String {
        match self {
            Script::Order => &mut shas.order,
            Script::Product => &mut shas.product,
            Script::Snapshot => &mut shas.snapshot,
        }
    }
}

/// A change on its way to Redis.
#[derive(Debug)]
struct Change {
    ticket: Option<Ticket>,
    op: Op,
    category: CategoryId,
    /// Unique to this process and change: a retry with it never counts twice.
    request: String,
    /// Past it, a change not yet answered is refused: 503 if it was never sent, 504 if
    /// it was (Redis may have applied it).
    deadline: Instant,
    /// Written to Redis at least once.
    sent: bool,
}

/// What a reply on the command link is for, oldest first.
#[derive(Debug)]
enum Waiting {
    /// The first command of a connection: its answer makes the link ready.
    Ping,
    Select,
    Script(Script),
    Change(Change),
    /// A catch-up, with the generation of the catch-up that asked for it.
    Snapshot(CategoryId, u64),
    Log(CategoryId, u64),
    Seed,
    /// The periodic check, with the category's sequence when it was sent.
    Sequence(CategoryId, u64),
}

/// Where a connection is.
#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Not connected; the next attempt is due then.
    Down {
        retry_at: Instant,
    },
    /// `connect` started; the first writable event says how it went.
    Connecting,
    /// Connected; the answer to the first command (a `PING`) makes it ready, so that a
    /// Redis that accepts and then refuses (`maxclients`) is not taken for a link back.
    Handshake,
    Ready,
}

/// One connection: its socket, its bytes, its state.
#[derive(Debug)]
struct Side {
    name: &'static str,
    token: Token,
    stream: Option<TcpStream>,
    link: Link,
    state: State,
    backoff: Duration,
    /// Why it went down (the latest reason), until it is back (logged once each way).
    down_because: Option<String>,
    /// When connecting started, while it is connecting or shaking hands.
    since: Option<Instant>,
}

/// One category as this process follows it.
#[derive(Debug)]
struct Followed {
    keys: Keys,
    epoch: String,
    seq: u64,
    /// Catching up (a snapshot, or the log since `seq`): messages that arrive once its
    /// command is sent wait in `held` until it is applied.
    catch_up: Option<CatchUp>,
    held: Vec<Message>,
    /// Redis's sequence at the last check, while this process was behind it.
    behind: Option<u64>,
    /// Counts catch-ups: a reply to an older one is not applied.
    generation: u64,
}

/// How a category catches up with Redis, and whether the command is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CatchUp {
    /// Every total, atomically: at start, on a new epoch, when the log does not reach back.
    Snapshot { sent: bool },
    /// The changes after `seq` from the category's log (a gap in the messages).
    Log { sent: bool },
}

impl CatchUp {
    fn sent(self) -> bool {
        match self {
            CatchUp::Snapshot { sent } | CatchUp::Log { sent } => sent,
        }
    }
}

/// A message of a category's channel: `<epoch>:<seq>:<id>:<total>[:<product>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    epoch: String,
    seq: u64,
    id: String,
    total: u64,
    product: Option<NewProduct>,
}

impl Message {
    fn parse(payload: &str) -> Option<Message> {
        let mut parts = payload.splitn(5, ':');
        let epoch = parts.next()?.to_string();
        let seq = parts.next()?.parse().ok()?;
        let id = parts.next()?.to_string();
        let total = parts.next()?.parse().ok()?;
        let product = match parts.next() {
            Some(json) => Some(fields(json)?),
            None => None,
        };
        Some(Message {
            epoch,
            seq,
            id,
            total,
            product,
        })
    }
}

/// A product's fields as Redis keeps them: `{"name","rrp","info"}`.
fn fields(json: &str) -> Option<NewProduct> {
    #[derive(serde::Deserialize)]
    struct Fields {
        name: String,
        rrp: String,
        info: String,
    }
    let f: Fields = serde_json::from_str(json).ok()?;
    Some(NewProduct {
        name: f.name,
        rrp: f.rrp,
        info: f.info,
    })
}

fn fields_json(p: &NewProduct) -> String {
    serde_json::json!({"name": p.name, "rrp": p.rrp, "info": p.info}).to_string()
}

/// The state in Redis, and this process's copy of it.
#[derive(Debug)]
pub struct Redis {
    catalog: Catalog,
    addr: SocketAddr,
    url: Url,
    prefix: String,
    /// The data a category missing from Redis is seeded from.
    data: Catalog,
    cats: Vec<Followed>,
    cmd: Side,
    sub: Side,
    shas: Shas,
    /// Sent on the command link and not answered yet, oldest first.
    waiting: VecDeque<Waiting>,
    /// Changes to send once the command link is ready.
    to_send: VecDeque<Change>,
    /// `SUBSCRIBE` confirmations still to come before the snapshots are taken.
    confirmations_due: usize,
    run_id: String,
    next_request: u64,
    next_check: Instant,
    check_every: Duration,
    /// Nothing is sent before then: Redis is loading its data, or refused a catch-up.
    paused_until: Option<Instant>,
    /// What kept the last changes from being applied while the link is up (loading, a
    /// refused catch-up); logged once.
    trouble: Option<String>,
    /// `SCRIPT LOAD`s in flight: the scripts are loaded once, whatever asked for them.
    scripts_loading: usize,
    /// When each command in `waiting` was queued, oldest first.
    waiting_since: VecDeque<Instant>,
    done: Vec<Done>,
    updates: Vec<Update>,
}

impl Redis {
    /// Connects to Redis (blocking, at start-up), seeds it from `data` when it holds no
    /// catalog under `prefix`, and loads the catalog it holds. Every failure is an `Err`
    /// naming what went wrong: the process does not start without Redis.
    pub fn connect(url: &str, prefix: &str, data: Catalog) -> Result<Redis, String> {
        let url = Url::parse(url)?;
        let addr = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("Redis host {:?} does not resolve", url.host))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, START_TIMEOUT)
            .map_err(|e| format!("cannot reach Redis at {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(START_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(START_TIMEOUT)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| format!("Redis at {addr}: {e}"))?;
        let mut link = Link::default();
        let mut call = |args: &[&[u8]]| -> Result<Reply, String> {
            call(&mut stream, &mut link, args).map_err(|e| format!("Redis at {addr}: {e}"))
        };
        if url.db != 0 {
            call(&[b"SELECT", url.db.to_string().as_bytes()])?;
        }
        let mut shas = Shas::default();
        for script in Script::ALL {
            let reply = call(&[b"SCRIPT", b"LOAD", script.text().as_bytes()])?;
            *script.sha(&mut shas) = text(&reply).ok_or("SCRIPT LOAD: no SHA1")?.to_string();
        }
        let all: Vec<CategoryId> = (0..data.category_names().count()).collect();
        call(&eval_args(scripts::SEED, &seed_args(prefix, &data, &all)))?;
        let listed = call(&[b"GET", scripts::catalog_key(prefix).as_bytes()])?;
        let listed: Vec<serde_json::Value> = text(&listed)
            .and_then(|t| serde_json::from_str(t).ok())
            .ok_or("the catalog in Redis is not a JSON list")?;
        let mut cats = Vec::new();
        let mut data_file = Vec::new();
        for c in &listed {
            let (Some(name), Some(id_prefix)) = (c["name"].as_str(), c["prefix"].as_str()) else {
                return Err("the catalog in Redis lists a category without name or prefix".into());
            };
            let keys = Keys::new(prefix, name);
            let reply = call(&[
                b"EVALSHA",
                shas.snapshot.as_bytes(),
                b"3",
                keys.meta.as_bytes(),
                keys.totals.as_bytes(),
                keys.products.as_bytes(),
            ])?;
            let snap = Snapshot::read(&reply).ok_or("a snapshot from Redis has another shape")?;
            data_file.push(serde_json::json!({
                "name": name,
                "prefix": id_prefix,
                "products": snap.products(),
            }));
            cats.push(Followed {
                keys,
                epoch: snap.epoch,
                seq: snap.seq,
                catch_up: None,
                held: Vec::new(),
                behind: None,
                generation: 0,
            });
        }
        let json = serde_json::json!({ "categories": data_file }).to_string();
        let catalog =
            Catalog::from_json(&json).map_err(|e| format!("the catalog in Redis: {e}"))?;
        stream
            .set_nonblocking(true)
            .map_err(|e| format!("Redis at {addr}: {e}"))?;
        let now = Instant::now();
        Ok(Redis {
            catalog,
            addr,
            url,
            prefix: prefix.to_string(),
            data,
            cats,
            cmd: Side::new("command", COMMANDS, Some(TcpStream::from_std(stream)), now),
            sub: Side::new("subscription", SUBSCRIPTION, None, now),
            shas,
            waiting: VecDeque::new(),
            to_send: VecDeque::new(),
            confirmations_due: 0,
            run_id: format!("{:08x}", random_u64() as u32),
            next_request: 0,
            next_check: now + Duration::from_secs(5),
            check_every: Duration::from_secs(5),
            paused_until: None,
            trouble: None,
            scripts_loading: 0,
            waiting_since: VecDeque::new(),
            done: Vec::new(),
            updates: Vec::new(),
        })
    }

    /// Compares each category's sequence with Redis's every `period` (5 s unless set).
    pub fn checking_every(mut self, period: Duration) -> Redis {
        self.next_check = Instant::now() + period;
        self.check_every = period;
        self
    }

    /// Queues a change under the request id `request` (the script applies an id once).
    fn submit_as(&mut self, ticket: Option<Ticket>, op: Op, request: String) {
        let category = match &op {
            Op::AddAmount { id, .. } => self.catalog.category_of(id),
            Op::AddProduct { category, .. } => Some(*category),
        };
        let Some(category) = category else {
            if let (Some(ticket), Op::AddAmount { id, .. }) = (ticket, &op) {
                self.done
                    .push((ticket, Err(Refusal::UnknownProduct(id.clone()))));
            }
            return;
        };
        if self.cmd.state != State::Ready {
            if let Some(ticket) = ticket {
                let refusal = self.unavailable();
                self.done.push((ticket, Err(refusal)));
            }
            return;
        }
        self.to_send.push_back(Change {
            ticket,
            op,
            category,
            request,
            deadline: Instant::now() + CHANGE_DEADLINE,
            sent: false,
        });
    }

    /// What to say in a 503 for a change that could not be sent: the link is down, or
    /// Redis is in trouble (loading its data).
    fn unavailable(&self) -> Refusal {
        if self.cmd.state != State::Ready {
            let why = self.cmd.down_because.as_deref().unwrap_or("connecting");
            return Refusal::Unavailable(format!(
                "Redis is unreachable ({why}); try again shortly"
            ));
        }
        let why = self
            .trouble
            .as_deref()
            .unwrap_or("Redis did not take it in time");
        Refusal::Unavailable(format!("{why}; try again shortly"))
    }

    /// Expects a reply to a command just queued on the command link.
    fn expect(&mut self, waiting: Waiting) {
        self.waiting.push_back(waiting);
        self.waiting_since.push_back(Instant::now());
    }

    /// Sends what is due on the command link: changes first waiting for it, snapshots
    /// wanted, the periodic sequence check.
    fn send_commands(&mut self, now: Instant) {
        if self.cmd.state != State::Ready || self.paused_until.is_some_and(|t| now < t) {
            return;
        }
        self.paused_until = None;
        while let Some(change) = self.to_send.pop_front() {
            self.send_change(change);
        }
        if self.sub.state == State::Ready && self.confirmations_due == 0 {
            for cat in 0..self.cats.len() {
                let f = &mut self.cats[cat];
                match f.catch_up {
                    Some(CatchUp::Snapshot { sent: false }) => {
                        f.catch_up = Some(CatchUp::Snapshot { sent: true });
                        self.cmd.link.command(&[
                            b"EVALSHA",
                            self.shas.snapshot.as_bytes(),
                            b"3",
                            f.keys.meta.as_bytes(),
                            f.keys.totals.as_bytes(),
                            f.keys.products.as_bytes(),
                        ]);
                        let generation = f.generation;
                        self.expect(Waiting::Snapshot(cat, generation));
                    }
                    Some(CatchUp::Log { sent: false }) => {
                        f.catch_up = Some(CatchUp::Log { sent: true });
                        let from = format!("{}-0", f.seq + 1);
                        self.cmd.link.command(&[
                            b"XRANGE",
                            f.keys.log.as_bytes(),
                            from.as_bytes(),
                            b"+",
                        ]);
                        let generation = f.generation;
                        self.expect(Waiting::Log(cat, generation));
                    }
                    _ => {}
                }
            }
        }
        if now >= self.next_check {
            self.next_check = now + self.check_every;
            for cat in 0..self.cats.len() {
                let f = &self.cats[cat];
                if f.catch_up.is_none() {
                    self.cmd
                        .link
                        .command(&[b"HMGET", f.keys.meta.as_bytes(), b"e", b"s"]);
                    let seq = f.seq;
                    self.expect(Waiting::Sequence(cat, seq));
                }
            }
        }
    }

    fn send_change(&mut self, change: Change) {
        let keys = &self.cats[change.category].keys;
        let request = format!("{}{}", keys.request, change.request);
        match &change.op {
            Op::AddAmount { id, amount } => {
                let (amount, max) = (amount.to_string(), MAX_TOTAL.to_string());
                self.cmd.link.command(&[
                    b"EVALSHA",
                    self.shas.order.as_bytes(),
                    b"5",
                    keys.totals.as_bytes(),
                    keys.meta.as_bytes(),
                    keys.log.as_bytes(),
                    request.as_bytes(),
                    keys.products.as_bytes(),
                    id.as_bytes(),
                    amount.as_bytes(),
                    max.as_bytes(),
                    keys.channel.as_bytes(),
                    scripts::LOG_LENGTH.as_bytes(),
                    scripts::REQUEST_TTL_SECS.as_bytes(),
                ]);
            }
            Op::AddProduct { category, product } => {
                let (fields, max) = (fields_json(product), MAX_PRODUCTS_PER_CATEGORY.to_string());
                self.cmd.link.command(&[
                    b"EVALSHA",
                    self.shas.product.as_bytes(),
                    b"5",
                    keys.products.as_bytes(),
                    keys.totals.as_bytes(),
                    keys.meta.as_bytes(),
                    keys.log.as_bytes(),
                    request.as_bytes(),
                    self.catalog.prefix(*category).as_bytes(),
                    fields.as_bytes(),
                    max.as_bytes(),
                    keys.channel.as_bytes(),
                    scripts::LOG_LENGTH.as_bytes(),
                    scripts::REQUEST_TTL_SECS.as_bytes(),
                ]);
            }
        }
        self.expect(Waiting::Change(Change {
            sent: true,
            ..change
        }));
    }

    /// A reply on the command link, for the oldest command waiting.
    fn on_command_reply(&mut self, reply: Reply, now: Instant, log: &mut Log) {
        let Some(waiting) = self.waiting.pop_front() else {
            log.warn(format_args!("Redis sent a reply nobody asked for"));
            return;
        };
        self.waiting_since.pop_front();
        if let OwnedFrame::Error(e) = &reply {
            if e.starts_with("LOADING") {
                // Redis is loading its data: whatever was asked is asked again shortly.
                self.pause(now + LOADING_PAUSE, "Redis is loading its data", log);
            } else if e.starts_with("NOSCRIPT") {
                // Redis lost its script cache (a restart, SCRIPT FLUSH): load them again.
                self.reload_scripts();
            }
        }
        match waiting {
            Waiting::Ping => {
                if let OwnedFrame::Error(e) = reply {
                    return self.on_failed(COMMANDS, e, now, log);
                }
                self.cmd.up(log);
            }
            Waiting::Select | Waiting::Seed => {}
            Waiting::Script(script) => {
                self.scripts_loading = self.scripts_loading.saturating_sub(1);
                if let Some(sha) = text(&reply) {
                    *script.sha(&mut self.shas) = sha.to_string();
                }
            }
            Waiting::Change(change) => self.on_change_reply(change, reply, log),
            Waiting::Snapshot(cat, generation) | Waiting::Log(cat, generation)
                if generation != self.cats[cat].generation =>
            {
                // The answer to a catch-up that a newer one replaced.
            }
            Waiting::Snapshot(cat, _) | Waiting::Log(cat, _)
                if let OwnedFrame::Error(e) = &reply =>
            {
                let why = format!("Redis refused a catch-up: {e}");
                self.pause(now + TROUBLE_PAUSE, &why, log);
                self.resync(cat);
            }
            Waiting::Snapshot(cat, _) => self.on_snapshot(cat, &reply, now, log),
            Waiting::Log(cat, _) => self.on_log(cat, &reply),
            Waiting::Sequence(cat, then) => self.on_sequence(cat, then, &reply, log),
        }
    }

    /// Stops sending until `until`, saying why once.
    fn pause(&mut self, until: Instant, why: &str, log: &mut Log) {
        if self.trouble.is_none() {
            log.warn(format_args!("{why}; waiting before asking again"));
        }
        self.trouble = Some(why.to_string());
        self.paused_until = Some(until);
    }

    /// The periodic check of a category: Redis's epoch and sequence beside this process's.
    fn on_sequence(&mut self, cat: CategoryId, then: u64, reply: &Reply, log: &mut Log) {
        let f = &mut self.cats[cat];
        if f.catch_up.is_some() {
            return;
        }
        let (epoch, remote) = match reply {
            OwnedFrame::Array(parts) if parts.len() == 2 => (
                text(&parts[0]).unwrap_or("").to_string(),
                integer(&parts[1]).unwrap_or(0) as u64,
            ),
            _ => return,
        };
        let name = self.catalog.category_name(cat);
        // Messages applied since the check was sent can put this process ahead of the
        // answer: Redis went back only if it is behind where this process was then.
        if epoch != f.epoch || remote < then {
            // Emptied and seeded again, or restarted from an older copy: start over.
            log.warn(format_args!(
                "Redis: category {name} is at epoch {epoch:?} sequence {remote}, this process at {:?} {}; taking a snapshot",
                f.epoch, f.seq
            ));
            self.resync(cat);
        } else if remote <= f.seq {
            f.behind = None;
        } else if f.behind.is_some_and(|then| f.seq < then) {
            log.warn(format_args!(
                "Redis: category {name} is at sequence {remote}, this process at {}; the subscription missed changes, taking a snapshot",
                f.seq
            ));
            self.resync(cat);
        } else {
            f.behind = Some(remote);
        }
    }

    fn on_change_reply(&mut self, change: Change, reply: Reply, log: &mut Log) {
        let cat = change.category;
        let result = match (&change.op, &reply) {
            (_, OwnedFrame::Error(e)) if e.starts_with("NOSCRIPT") || e.starts_with("LOADING") => {
                // Sent again once the scripts are loaded, or after the pause, until the
                // change's deadline.
                self.to_send.push_back(change);
                return;
            }
            (_, OwnedFrame::Error(e)) if e.starts_with("NOSTATE ") => {
                // Redis lost (part of) the category: seed what is missing again, and
                // refuse this change until then.
                let args = self.seed_of(cat);
                self.cmd.link.command(&eval_args(scripts::SEED, &args));
                self.expect(Waiting::Seed);
                self.resync(cat);
                Err(Refusal::Unavailable(
                    "Redis lost its data and is being seeded again; try again shortly".into(),
                ))
            }
            (Op::AddAmount { id, amount }, OwnedFrame::Error(e)) => Err(match e.as_str() {
                e if e.starts_with("UNKNOWN ") => Refusal::UnknownProduct(id.clone()),
                e if e.starts_with("RANGE ") => Refusal::OutOfRange {
                    id: id.clone(),
                    total: e[6..].parse().unwrap_or(0),
                    amount: *amount,
                },
                e => Refusal::Unavailable(format!("Redis refused the order: {e}")),
            }),
            (Op::AddProduct { .. }, OwnedFrame::Error(e)) => Err(match e.as_str() {
                e if e.starts_with("FULL ") => {
                    Refusal::CategoryFull(self.catalog.category_name(cat).to_string())
                }
                e => Refusal::Unavailable(format!("Redis refused the product: {e}")),
            }),
            (op, reply) => match applied(op, cat, reply) {
                Some((message, applied)) => {
                    self.trouble = None;
                    // This process's own change is applied at once when it is the next in
                    // sequence, so that its own reads see it; its message is then dropped
                    // as already applied.
                    self.apply_if_next(cat, &message);
                    Ok(applied)
                }
                None => {
                    log.warn(format_args!("Redis answered a change with {reply:?}"));
                    Err(Refusal::Unavailable("Redis answered unexpectedly".into()))
                }
            },
        };
        if let Some(ticket) = change.ticket {
            self.done.push((ticket, result));
        }
    }

    /// Applies `message` if it is the next of its category (and no snapshot is under way).
    fn apply_if_next(&mut self, cat: CategoryId, message: &Message) {
        let f = &self.cats[cat];
        if f.catch_up.is_none() && message.epoch == f.epoch && message.seq == f.seq + 1 {
            self.apply(cat, message);
        }
    }

    /// Applies the next change of a category: the copy and its subscribers follow.
    fn apply(&mut self, cat: CategoryId, message: &Message) {
        self.cats[cat].seq = message.seq;
        let new = message.product.as_ref().is_some_and(|fields| {
            let product = product(&message.id, fields, message.total);
            self.catalog.insert_product(cat, product)
        });
        self.set_total(cat, &message.id, message.total, new);
    }

    /// Sets a total in the copy, and tells the subscribers when it changed, or when the
    /// product is `new`.
    fn set_total(&mut self, cat: CategoryId, id: &str, total: u64, new: bool) {
        if !new && self.catalog.total(id) == Some(total) {
            return;
        }
        self.catalog.restore_total(id, total);
        self.updates.push(Update {
            category: cat,
            id: id.to_string(),
            total,
        });
    }

    /// A message from a category's channel.
    fn on_message(&mut self, cat: CategoryId, message: Message) {
        let f = &mut self.cats[cat];
        if let Some(catch_up) = f.catch_up {
            // Published before the catch-up's command is sent, a message is in what it
            // brings; after, it may not be.
            if catch_up.sent() {
                f.held.push(message);
            }
            return;
        }
        if message.epoch != f.epoch {
            // Redis was emptied and seeded again: start over from a snapshot.
            self.resync(cat);
        } else if message.seq > f.seq + 1 {
            // Messages were missed: the log has them (the script appends before it
            // publishes).
            f.generation += 1;
            f.catch_up = Some(CatchUp::Log { sent: false });
        } else if message.seq == f.seq + 1 {
            self.apply(cat, &message);
        }
    }

    /// Takes a new snapshot of `cat`.
    fn resync(&mut self, cat: CategoryId) {
        let f = &mut self.cats[cat];
        f.generation += 1;
        f.catch_up = Some(CatchUp::Snapshot { sent: false });
        f.held.clear();
        f.behind = None;
    }

    /// The log of `cat` since its sequence: applied in order; when it does not reach back
    /// that far (trimmed), a snapshot instead.
    fn on_log(&mut self, cat: CategoryId, reply: &Reply) {
        let Some(entries) = log_entries(reply) else {
            return self.resync(cat);
        };
        for message in entries {
            let f = &self.cats[cat];
            if message.seq <= f.seq {
                continue;
            }
            if message.seq > f.seq + 1 {
                return self.resync(cat);
            }
            let message = Message {
                epoch: f.epoch.clone(),
                ..message
            };
            self.apply(cat, &message);
        }
        self.caught_up(cat);
    }

    /// The catch-up of `cat` is done: the messages held meanwhile follow, in order.
    fn caught_up(&mut self, cat: CategoryId) {
        let f = &mut self.cats[cat];
        f.catch_up = None;
        let mut held = std::mem::take(&mut f.held);
        held.sort_by_key(|m| m.seq);
        for message in held {
            if message.seq > self.cats[cat].seq {
                self.on_message(cat, message);
            }
        }
    }

    fn on_snapshot(&mut self, cat: CategoryId, reply: &Reply, now: Instant, log: &mut Log) {
        let Some(snap) = Snapshot::read(reply) else {
            self.pause(
                now + TROUBLE_PAUSE,
                "Redis sent a snapshot of another shape",
                log,
            );
            return self.resync(cat);
        };
        let name = self.catalog.category_name(cat).to_string();
        if snap.epoch.is_empty() {
            // Redis holds nothing for this category (emptied, or restarted empty): seed it
            // again, then take the snapshot again. Paused, so that a category that cannot
            // be seeded is not asked for in a loop.
            let why = format!("Redis holds no state for {name}; seeding it again");
            self.pause(now + LOADING_PAUSE, &why, log);
            let args = self.seed_of(cat);
            self.cmd.link.command(&eval_args(scripts::SEED, &args));
            self.expect(Waiting::Seed);
            return self.resync(cat);
        }
        let f = &mut self.cats[cat];
        if snap.epoch == f.epoch && snap.seq < f.seq {
            // Older than what this process applied: not the state now.
            return self.resync(cat);
        }
        let new_epoch = snap.epoch != f.epoch;
        f.epoch = snap.epoch.clone();
        f.seq = snap.seq;
        self.trouble = None;
        if new_epoch {
            // Another life of the category: its products are Redis's now, every total is
            // told again.
            log.info(format_args!(
                "Redis: category {name} has a new epoch; every total is taken from Redis again"
            ));
            self.catalog.replace_products(cat, snap.products());
            for p in self.catalog.products(cat) {
                self.updates.push(Update {
                    category: cat,
                    id: p.id.clone(),
                    total: p.total,
                });
            }
        } else {
            let mut new = Vec::new();
            for (id, fields) in &snap.products {
                if self.catalog.insert_product(cat, product(id, fields, 0)) {
                    new.push(id);
                }
            }
            for (id, total) in &snap.totals {
                self.set_total(cat, id, *total, new.contains(&id));
            }
        }
        self.caught_up(cat);
    }

    /// The arguments of `SEED` for one category: from the data when it has the category,
    /// else from this process's copy.
    fn seed_of(&self, cat: CategoryId) -> Vec<Vec<u8>> {
        let name = self.catalog.category_name(cat);
        match self.data.category(name) {
            Some(c) => seed_args(&self.prefix, &self.data, &[c]),
            None => seed_args(&self.prefix, &self.catalog, &[cat]),
        }
    }

    /// A reply on the subscription: a confirmation or a message.
    fn on_subscription_reply(&mut self, reply: Reply, now: Instant, log: &mut Log) {
        if self.sub.state == State::Handshake {
            // The answer to the connection's PING: a refusal (`maxclients`, `NOAUTH`) is
            // a link that failed, anything else makes it ready.
            if let OwnedFrame::Error(e) = reply {
                return self.on_failed(SUBSCRIPTION, e, now, log);
            }
            self.sub.up(log);
        }
        let OwnedFrame::Array(parts) = reply else {
            return;
        };
        match parts.first().and_then(text) {
            Some("subscribe") => {
                self.confirmations_due = self.confirmations_due.saturating_sub(1);
            }
            Some("message") if parts.len() == 3 => {
                let channel = bytes(&parts[1]).unwrap_or_default();
                let Some(cat) = self
                    .cats
                    .iter()
                    .position(|f| f.keys.channel.as_bytes() == channel)
                else {
                    return;
                };
                match text(&parts[2]).and_then(Message::parse) {
                    Some(message) => self.on_message(cat, message),
                    None => log.warn(format_args!(
                        "Redis: a message on {} this process cannot read",
                        self.cats[cat].keys.channel
                    )),
                }
            }
            _ => {}
        }
    }

    /// Loads the scripts again (Redis lost its cache).
    fn reload_scripts(&mut self) {
        if self.scripts_loading > 0 {
            return;
        }
        self.scripts_loading = Script::ALL.len();
        for script in Script::ALL {
            self.cmd
                .link
                .command(&[b"SCRIPT", b"LOAD", script.text().as_bytes()]);
            self.expect(Waiting::Script(script));
        }
    }

    /// The connection behind `token` is up: what each sends first.
    fn on_connected(&mut self, token: Token) {
        let db = self.url.db.to_string();
        self.side(token).link.command(&[b"PING"]);
        if token == COMMANDS {
            self.expect(Waiting::Ping);
            self.scripts_loading = 0;
            if self.url.db != 0 {
                self.cmd.link.command(&[b"SELECT", db.as_bytes()]);
                self.expect(Waiting::Select);
            }
            self.reload_scripts();
        } else {
            let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
            args.extend(self.cats.iter().map(|f| f.keys.channel.as_bytes()));
            self.sub.link.command(&args);
            self.confirmations_due = self.cats.len();
            // Whatever was published before the confirmation is in the snapshots.
            for cat in 0..self.cats.len() {
                self.resync(cat);
            }
        }
    }

    /// The connection behind `token` failed: log it (once), and retry after a while.
    /// Changes in flight on the command link are sent again once it is back.
    fn on_failed(&mut self, token: Token, why: String, now: Instant, log: &mut Log) {
        let side = self.side(token);
        side.fail(&why, now, log);
        if token == COMMANDS {
            let mut retry = VecDeque::new();
            self.waiting_since.clear();
            for waiting in std::mem::take(&mut self.waiting) {
                match waiting {
                    Waiting::Change(change) => retry.push_back(change),
                    // Asked again once the link is back.
                    Waiting::Snapshot(cat, _) | Waiting::Log(cat, _) => self.resync(cat),
                    _ => {}
                }
            }
            retry.append(&mut self.to_send);
            self.to_send = retry;
        } else {
            self.confirmations_due = 0;
        }
    }

    fn side(&mut self, token: Token) -> &mut Side {
        if token == COMMANDS {
            &mut self.cmd
        } else {
            &mut self.sub
        }
    }

    /// Reads and handles what the connection behind `token` has.
    fn read(&mut self, token: Token, now: Instant, log: &mut Log) {
        let side = self.side(token);
        let Some(stream) = side.stream.as_mut() else {
            return;
        };
        let open = side.link.fill(stream);
        let mut replies = Vec::new();
        let decoded = loop {
            match side.link.next_reply() {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        for reply in replies {
            if self.side(token).stream.is_none() {
                // The link failed on an earlier reply: the rest belong to nobody now.
                break;
            }
            if token == COMMANDS {
                self.on_command_reply(reply, now, log);
            } else {
                self.on_subscription_reply(reply, now, log);
            }
        }
        match (open, decoded) {
            (Ok(true), Ok(())) => {}
            (Ok(false), _) => self.on_failed(token, "Redis closed the connection".into(), now, log),
            (Err(e), _) | (_, Err(e)) => self.on_failed(token, e.to_string(), now, log),
        }
    }

    /// Writes what is queued for the connection behind `token`.
    fn write(&mut self, token: Token, now: Instant, log: &mut Log) {
        let side = self.side(token);
        if !matches!(side.state, State::Handshake | State::Ready) {
            return;
        }
        let Some(stream) = side.stream.as_mut() else {
            return;
        };
        if let Err(e) = side.link.flush(stream) {
            self.on_failed(token, e.to_string(), now, log);
        }
    }
}

impl Side {
    fn new(name: &'static str, token: Token, stream: Option<TcpStream>, now: Instant) -> Side {
        let state = match stream {
            Some(_) => State::Ready,
            None => State::Down { retry_at: now },
        };
        Side {
            name,
            token,
            stream,
            link: Link::default(),
            state,
            backoff: BACKOFF_MIN,
            down_because: None,
            since: None,
        }
    }

    /// The first answer came: the link is ready (and, if it was down, back).
    fn up(&mut self, log: &mut Log) {
        self.state = State::Ready;
        self.since = None;
        self.backoff = BACKOFF_MIN;
        if let Some(why) = self.down_because.take() {
            log.info(format_args!(
                "Redis {} link back (it was down: {why})",
                self.name
            ));
        }
    }

    fn fail(&mut self, why: &str, now: Instant, log: &mut Log) {
        if self.down_because.is_none() {
            log.error(format_args!(
                "Redis {} link down: {why}; reconnecting",
                self.name
            ));
        }
        self.down_because = Some(why.to_string());
        self.since = None;
        self.stream = None;
        self.link.reset();
        // Jitter: between half and all of the back-off, so that processes that lost Redis
        // together do not come back in step.
        let wait = self.backoff.mul_f64(0.5 + 0.5 * unit_random());
        self.state = State::Down {
            retry_at: now + wait,
        };
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Starts connecting when the back-off has passed.
    fn reconnect(&mut self, addr: SocketAddr, registry: &Registry, now: Instant, log: &mut Log) {
        let State::Down { retry_at } = self.state else {
            return;
        };
        if now < retry_at {
            return;
        }
        let started = TcpStream::connect(addr).and_then(|mut stream| {
            keep_alive(&stream)?;
            registry.register(
                &mut stream,
                self.token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        match started {
            Ok(stream) => {
                self.stream = Some(stream);
                self.state = State::Connecting;
                self.since = Some(now);
            }
            Err(e) => self.fail(&e.to_string(), now, log),
        }
    }
}

impl Backend for Redis {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn submit(&mut self, ticket: Option<Ticket>, op: Op) {
        self.next_request += 1;
        let request = format!("{}-{}", self.run_id, self.next_request);
        self.submit_as(ticket, op, request);
    }

    fn submit_named(&mut self, ticket: Option<Ticket>, op: Op, name: &str) {
        // Under the client's name, whichever process it is sent to.
        self.submit_as(ticket, op, format!("key:{name}"));
    }

    fn register(&mut self, registry: &Registry) -> std::io::Result<()> {
        if let Some(stream) = &mut self.cmd.stream {
            registry.register(stream, COMMANDS, Interest::READABLE | Interest::WRITABLE)?;
        }
        Ok(())
    }

    fn ready(&mut self, token: Token, writable: bool, now: Instant, log: &mut Log) {
        let side = self.side(token);
        if side.state == State::Connecting && writable {
            let connected = side.stream.as_ref().map(|s| match s.take_error() {
                Ok(None) => s.peer_addr().map(|_| ()),
                Ok(Some(e)) | Err(e) => Err(e),
            });
            match connected {
                Some(Ok(())) => {
                    side.state = State::Handshake;
                    self.on_connected(token);
                }
                Some(Err(e)) if e.kind() == std::io::ErrorKind::NotConnected => return,
                Some(Err(e)) => return self.on_failed(token, e.to_string(), now, log),
                None => return,
            }
        }
        self.read(token, now, log);
        self.write(token, now, log);
    }

    fn wakeup(&self) -> Option<Instant> {
        let retry = |side: &Side| match side.state {
            State::Down { retry_at } => Some(retry_at),
            _ => None,
        };
        // A link connecting or shaking hands is given up on after the reply timeout.
        let given_up = |side: &Side| side.since.map(|t| t + REPLY_TIMEOUT);
        let deadline = self.to_send.iter().map(|c| c.deadline).min();
        // The check, the pause and the reply timeout run on a link that is up; while
        // sending is paused, the check waits for the pause.
        let up = self.cmd.state == State::Ready;
        let paused = self.paused_until.filter(|&t| up && t > Instant::now());
        let check = match paused {
            Some(until) => until.max(self.next_check),
            None => self.next_check,
        };
        let overdue = self.waiting_since.front().map(|&t| t + REPLY_TIMEOUT);
        [
            retry(&self.cmd),
            retry(&self.sub),
            given_up(&self.cmd),
            given_up(&self.sub),
            deadline,
            up.then_some(check),
            paused,
            overdue.filter(|_| up),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn tick(&mut self, registry: &Registry, now: Instant, log: &mut Log) {
        let addr = self.addr;
        self.cmd.reconnect(addr, registry, now, log);
        self.sub.reconnect(addr, registry, now, log);
        for token in [COMMANDS, SUBSCRIPTION] {
            if self
                .side(token)
                .since
                .is_some_and(|t| now >= t + REPLY_TIMEOUT)
            {
                let why = format!(
                    "no answer within {} s of connecting",
                    REPLY_TIMEOUT.as_secs()
                );
                self.on_failed(token, why, now, log);
            }
        }
        if self
            .waiting_since
            .front()
            .is_some_and(|&t| now >= t + REPLY_TIMEOUT)
        {
            // Frozen, or cut off without a reset: what was in flight goes again on a new
            // connection, with its request id.
            let why = format!("no answer for {} s", REPLY_TIMEOUT.as_secs());
            self.on_failed(COMMANDS, why, now, log);
        }
        // Changes that could not be applied by their deadline are refused: 503 (try
        // again) when Redis never had them, 504 when it may have applied them.
        if !self.to_send.is_empty() {
            let refusal = self.unavailable();
            let (expired, kept): (Vec<Change>, Vec<Change>) =
                self.to_send.drain(..).partition(|c| now >= c.deadline);
            self.to_send = kept.into();
            for change in expired {
                let Some(ticket) = change.ticket else {
                    continue;
                };
                let result = if change.sent {
                    Refusal::Uncertain(
                        "Redis did not answer in time; the change may or may not have been applied: read the total before sending it again".into(),
                    )
                } else {
                    refusal.clone()
                };
                self.done.push((ticket, Err(result)));
            }
        }
    }

    fn before_sleep(&mut self, log: &mut Log) {
        let now = Instant::now();
        self.send_commands(now);
        self.write(COMMANDS, now, log);
        self.write(SUBSCRIPTION, now, log);
    }

    fn drain(&mut self, done: &mut Vec<Done>, updates: &mut Vec<Update>) {
        done.append(&mut self.done);
        updates.append(&mut self.updates);
    }

    fn report(&self, _log: &mut Log) {}

    fn health(&self) -> Result<(), String> {
        for side in [&self.cmd, &self.sub] {
            if side.state != State::Ready {
                let why = side.down_because.as_deref().unwrap_or("connecting");
                return Err(format!("Redis {} link is down: {why}", side.name));
            }
        }
        match &self.trouble {
            Some(why) if self.paused_until.is_some() => Err(why.clone()),
            _ => Ok(()),
        }
    }
}

/// A category's snapshot: `{epoch, seq, {id, total, ...}, {id, fields, ...}}`.
#[derive(Debug)]
struct Snapshot {
    epoch: String,
    seq: u64,
    totals: Vec<(String, u64)>,
    products: Vec<(String, NewProduct)>,
}

impl Snapshot {
    fn read(reply: &Reply) -> Option<Snapshot> {
        let OwnedFrame::Array(parts) = reply else {
            return None;
        };
        let [epoch, seq, totals, products] = parts.as_slice() else {
            return None;
        };
        let pairs = |r: &Reply| -> Option<Vec<(String, String)>> {
            let OwnedFrame::Array(items) = r else {
                return None;
            };
            items
                .chunks(2)
                .map(|kv| Some((text(&kv[0])?.to_string(), text(kv.get(1)?)?.to_string())))
                .collect()
        };
        let totals = pairs(totals)?
            .into_iter()
            .map(|(id, t)| Some((id, t.parse().ok()?)))
            .collect::<Option<Vec<_>>>()?;
        let products = pairs(products)?
            .into_iter()
            .map(|(id, f)| Some((id, fields(&f)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Snapshot {
            epoch: text(epoch)?.to_string(),
            seq: integer(seq)? as u64,
            totals,
            products,
        })
    }

    /// The products in the shape of a data file, with their totals.
    fn products(&self) -> Vec<Product> {
        let totals: std::collections::HashMap<&str, u64> = self
            .totals
            .iter()
            .map(|(id, t)| (id.as_str(), *t))
            .collect();
        self.products
            .iter()
            .map(|(id, fields)| product(id, fields, totals.get(id.as_str()).copied().unwrap_or(0)))
            .collect()
    }
}

/// What Redis's answer to an applied change says: `{total or id, seq, epoch}`, as the
/// message it published, and the result for the request. `None` for any other shape.
fn applied(op: &Op, category: CategoryId, reply: &Reply) -> Option<(Message, Applied)> {
    let OwnedFrame::Array(parts) = reply else {
        return None;
    };
    let [first, seq, epoch] = parts.as_slice() else {
        return None;
    };
    let seq = u64::try_from(integer(seq)?).ok()?;
    let epoch = text(epoch)?.to_string();
    match op {
        Op::AddAmount { id, .. } => {
            let total = u64::try_from(integer(first)?).ok()?;
            let message = Message {
                epoch,
                seq,
                id: id.clone(),
                total,
                product: None,
            };
            let id = id.clone();
            Some((
                message,
                Applied::Total {
                    category,
                    id,
                    total,
                },
            ))
        }
        Op::AddProduct { product, .. } => {
            let id = text(first)?.to_string();
            let message = Message {
                epoch,
                seq,
                id: id.clone(),
                total: 0,
                product: Some(product.clone()),
            };
            Some((message, Applied::Product { category, id }))
        }
    }
}

/// The entries of an `XRANGE` of a category's log, as messages (without their epoch).
fn log_entries(reply: &Reply) -> Option<Vec<Message>> {
    let OwnedFrame::Array(entries) = reply else {
        return None;
    };
    entries
        .iter()
        .map(|entry| {
            let OwnedFrame::Array(parts) = entry else {
                return None;
            };
            let [id, OwnedFrame::Array(pairs)] = parts.as_slice() else {
                return None;
            };
            let seq = text(id)?.strip_suffix("-0")?.parse().ok()?;
            let field = |name: &str| {
                pairs
                    .chunks(2)
                    .find(|kv| text(&kv[0]) == Some(name))
                    .and_then(|kv| text(kv.get(1)?))
            };
            Some(Message {
                epoch: String::new(),
                seq,
                id: field("id")?.to_string(),
                total: field("t")?.parse().ok()?,
                product: match field("p") {
                    Some(json) => Some(fields(json)?),
                    None => None,
                },
            })
        })
        .collect()
}

fn product(id: &str, fields: &NewProduct, total: u64) -> Product {
    Product {
        id: id.to_string(),
        name: fields.name.clone(),
        rrp: fields.rrp.clone(),
        info: fields.info.clone(),
        total,
    }
}

/// The arguments of `SEED` for the categories `cats` of `data` (see [`scripts::SEED`]),
/// with a new epoch: a category seeded again is never taken for the one before.
fn seed_args(prefix: &str, data: &Catalog, cats: &[CategoryId]) -> Vec<Vec<u8>> {
    let names: Vec<serde_json::Value> = (0..data.category_names().count())
        .map(|c| serde_json::json!({"name": data.category_name(c), "prefix": data.prefix(c)}))
        .collect();
    let mut args = vec![
        scripts::catalog_key(prefix).into_bytes(),
        serde_json::Value::from(names).to_string().into_bytes(),
        format!("{:016x}", random_u64()).into_bytes(),
    ];
    for &c in cats {
        let products = data.products(c);
        args.push(format!("{prefix}{{{}}}:", data.category_name(c)).into_bytes());
        args.push(products.len().to_string().into_bytes());
        for p in products {
            let fields = NewProduct {
                name: p.name.clone(),
                rrp: p.rrp.clone(),
                info: p.info.clone(),
            };
            args.push(p.id.clone().into_bytes());
            args.push(fields_json(&fields).into_bytes());
            args.push(p.total.to_string().into_bytes());
        }
    }
    args
}

/// `EVAL script 1 key args...`: the first of `args` is the script's one key.
fn eval_args<'a>(script: &'a str, args: &'a [Vec<u8>]) -> Vec<&'a [u8]> {
    let mut all: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), b"1"];
    all.extend(args.iter().map(Vec::as_slice));
    all
}

/// One command and its reply, on a blocking socket (start-up).
fn call(
    stream: &mut std::net::TcpStream,
    link: &mut Link,
    args: &[&[u8]],
) -> Result<Reply, String> {
    link.command(args);
    if link.flush(stream).map_err(|e| e.to_string())? != Flushed::All {
        return Err("timed out writing".into());
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(reply) = link.next_reply().map_err(|e| e.to_string())? {
            return match reply {
                OwnedFrame::Error(e) => Err(e),
                reply => Ok(reply),
            };
        }
        match stream.read(&mut buf) {
            Ok(0) => return Err("Redis closed the connection".into()),
            Ok(n) => link.feed(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// TCP keepalive on a Redis connection: a Redis that vanished without a reset (a machine
/// gone, a partition) is noticed within about a minute even when nothing is sent.
fn keep_alive(stream: &TcpStream) -> std::io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(5))
        .with_retries(4);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// A random number from the OS's hasher seed and the clock: enough for epochs, request ids
/// and jitter.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// A random number in `0.0..1.0`.
fn unit_random() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = |s: &str| Url::parse(s);
        assert_eq!(
            u("redis://127.0.0.1:6380/2"),
            Ok(Url {
                host: "127.0.0.1".into(),
                port: 6380,
                db: 2
            })
        );
        assert_eq!(u("redis://cache").unwrap().port, 6379);
        assert_eq!(u("redis://[::1]:7000").unwrap().host, "::1");
        for bad in [
            "http://x",
            "redis://",
            "redis://h:port",
            "redis://h/db",
            "redis://:pw@h",
        ] {
            assert!(u(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            Message::parse("00ab:12:A1:13"),
            Some(Message {
                epoch: "00ab".into(),
                seq: 12,
                id: "A1".into(),
                total: 13,
                product: None
            })
        );
        let m = Message::parse(r#"e:3:A3:0:{"name":"Fan: blue","rrp":"1","info":"a:b"}"#).unwrap();
        assert_eq!(m.product.unwrap().name, "Fan: blue");
        assert_eq!(Message::parse("e:x:A1:1"), None);
    }
}
