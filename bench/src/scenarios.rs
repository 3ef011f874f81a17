//! The measured scenarios. Each takes a started server and returns figures, or an error
//! when the server did not deliver what it should have.

use std::io;
use std::time::{Duration, Instant};

use crate::load::{Load, Sink};
use crate::procs::{CpuMeter, CpuShare, ServerProc};

const SUBSCRIBE: &str = "/orders/electronics";
const ORDER: (&str, &str, Option<&str>) = ("POST", "/orders/A1", Some("{\"amount\":1}"));
/// How long a fan-out may go without a delivery or a response before it is given up.
const STALL: Duration = Duration::from_secs(10);

/// Requests per second from `conns` keep-alive clients, each sending its next request when
/// the previous response is complete (no pipelining), and how long each took.
pub struct Throughput {
    pub per_second: f64,
    pub cpu: CpuShare,
    /// From a request's send (the previous response's arrival) to its response.
    pub latency: Latency,
}

/// Counts responses, and times them while `timing`.
struct Count {
    n: u64,
    sent: Vec<Instant>,
    micros: Vec<u32>,
    timing: bool,
}

impl Sink for Count {
    fn response(&mut self, key: usize, now: Instant) -> bool {
        self.n += 1;
        if let Some(sent) = self.sent.get_mut(key) {
            if self.timing {
                let us = now.saturating_duration_since(*sent).as_micros();
                self.micros.push(us.min(u32::MAX as u128) as u32);
            }
            // The next request goes out now.
            *sent = now;
        }
        true
    }
    fn delivery(&mut self, _: usize, _: u64, _: u64, _: Instant) {}
}

pub fn throughput(
    server: &ServerProc,
    net: u8,
    (method, path, body): (&str, &str, Option<&str>),
    conns: usize,
    warmup: Duration,
    measure: Duration,
) -> io::Result<Throughput> {
    let mut load = Load::new(server.addr, net)?;
    let request = load.request(method, path, body);
    let mut count = Count {
        n: 0,
        sent: Vec::new(),
        micros: Vec::new(),
        timing: false,
    };
    for _ in 0..conns {
        let key = load.open_http(request.clone())?;
        if count.sent.len() <= key {
            count.sent.resize(key + 1, Instant::now());
        }
        count.sent[key] = Instant::now();
        load.send(key);
    }
    let started = Instant::now();
    run_until(&mut load, &mut count, started + warmup)?;
    count.timing = true;
    let (before, meter, from) = (count.n, CpuMeter::start(server), Instant::now());
    run_until(&mut load, &mut count, from + measure)?;
    let seconds = from.elapsed().as_secs_f64();
    let cpu = meter.stop();
    check(&load)?;
    Ok(Throughput {
        per_second: (count.n - before) as f64 / seconds,
        cpu,
        latency: Latency::of(count.micros),
    })
}

fn run_until(load: &mut Load, sink: &mut impl Sink, end: Instant) -> io::Result<()> {
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        load.turn(Some(end - now), sink)?;
        check(load)?;
    }
}

fn check(load: &Load) -> io::Result<()> {
    if load.error_count == 0 {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{} errors: {}",
        load.error_count,
        load.errors.join("; ")
    )))
}

/// Delivery of orders to subscribers.
pub struct Fanout {
    pub subscribers: usize,
    pub posts: u64,
    pub deliveries_per_second: f64,
    /// POSTs sent per second, from the first to the last.
    pub posts_per_second: f64,
    /// Frames a subscriber's read brought, on average (updates per server write).
    pub frames_per_read: f64,
    pub latency: Latency,
    /// Subscribers that received the final total.
    pub converged: usize,
    /// Totals subscribers did not receive because a newer one replaced them (conflation).
    pub conflated: u64,
    pub cpu: CpuShare,
}

impl Fanout {
    /// Every subscriber received every total.
    pub fn complete(&self) -> bool {
        self.converged == self.subscribers && self.conflated == 0
    }

    pub fn verdict(&self) -> String {
        if self.complete() && self.posts == 1 {
            format!("the new total to all {}", self.subscribers)
        } else if self.complete() {
            format!("all {} totals to all {}", self.posts, self.subscribers)
        } else {
            let share =
                100.0 * self.conflated as f64 / (self.posts * self.subscribers as u64) as f64;
            format!(
                "final total to all {}, {share:.1}% conflated",
                self.subscribers
            )
        }
    }
}

/// POST-to-subscriber latency percentiles.
#[derive(Clone, Copy, Default)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    fn of(mut micros: Vec<u32>) -> Latency {
        micros.sort_unstable();
        let at = |q: usize| {
            let i = (micros.len() * q / 100).min(micros.len().saturating_sub(1));
            Duration::from_micros(micros.get(i).copied().unwrap_or(0).into())
        };
        Latency {
            p50: at(50),
            p99: at(99),
            max: at(100),
        }
    }
}

/// Sends the orders and receives the totals. A subscriber's `n`-th total after its
/// baseline is timed from the `n`-th POST sent (exact with one poster; with several, the
/// server may take concurrent POSTs in another order, which shifts the figure by at most
/// the spread of their send times).
struct Orders {
    posts: u64,
    paced: bool,
    sent: Vec<Instant>,
    responses: u64,
    idle_posters: Vec<usize>,
    micros: Vec<u32>,
    deliveries: u64,
    conflated: u64,
    converged: usize,
    /// Totals the load did not cause: another writer, or a server bug.
    unexplained: u64,
    last_delivery: Option<Instant>,
    last_send: Instant,
}

impl Sink for Orders {
    fn response(&mut self, key: usize, now: Instant) -> bool {
        self.responses += 1;
        if !self.paced && (self.sent.len() as u64) < self.posts {
            self.sent.push(now);
            self.last_send = now;
            return true;
        }
        self.idle_posters.push(key);
        false
    }

    fn delivery(&mut self, _: usize, post: u64, skipped: u64, now: Instant) {
        let Some(sent) = self.sent.get(post as usize - 1) else {
            self.unexplained += 1;
            return;
        };
        self.micros.push(
            now.saturating_duration_since(*sent)
                .as_micros()
                .min(u32::MAX as u128) as u32,
        );
        self.deliveries += 1;
        self.conflated += skipped;
        if post == self.posts {
            self.converged += 1;
        }
        self.last_delivery = Some(now);
    }
}

/// `subscribers` of electronics receive `posts` orders for A1 sent from `posters`
/// connections, each as soon as its previous response is in, or at `rate` per second.
pub fn fanout(
    server: &ServerProc,
    net: u8,
    subscribers: usize,
    posters: usize,
    posts: u64,
    rate: Option<u32>,
) -> io::Result<Fanout> {
    let mut load = Load::new(server.addr, net)?;
    load.open_subscribers(SUBSCRIBE, subscribers)?;
    deliver(server, &mut load, posters, posts, rate)
}

/// As [`fanout`], with the subscribers spread evenly over `servers` (processes sharing
/// the state through Redis); the orders go to the first.
pub fn fanout_spread(
    servers: &[&ServerProc],
    net: u8,
    subscribers: usize,
    posters: usize,
    posts: u64,
) -> io::Result<Fanout> {
    let mut load = Load::new(servers[0].addr, net)?;
    for (i, server) in servers.iter().enumerate().rev() {
        load.aim(server.addr);
        let share = subscribers / servers.len() + usize::from(i < subscribers % servers.len());
        load.open_subscribers(SUBSCRIBE, share)?;
    }
    deliver(servers[0], &mut load, posters, posts, None)
}

fn deliver(
    server: &ServerProc,
    load: &mut Load,
    posters: usize,
    posts: u64,
    rate: Option<u32>,
) -> io::Result<Fanout> {
    let subscribers = load.subscribers();
    let (method, path, body) = ORDER;
    let request = load.request(method, path, body);
    let mut orders = Orders {
        posts,
        paced: rate.is_some(),
        sent: Vec::with_capacity(posts as usize),
        responses: 0,
        idle_posters: Vec::new(),
        micros: Vec::with_capacity(posts as usize * subscribers),
        deliveries: 0,
        conflated: 0,
        converged: 0,
        unexplained: 0,
        last_delivery: None,
        last_send: Instant::now(),
    };
    for _ in 0..posters {
        let key = load.open_http(request.clone())?;
        orders.idle_posters.push(key);
    }
    let meter = CpuMeter::start(server);
    let (frames, frame_reads) = (load.frames, load.frame_reads);
    let started = Instant::now();
    let interval = rate.map(|r| Duration::from_secs(1) / r);
    let mut progress = (started, 0);
    while orders.converged < subscribers || orders.responses < posts {
        let now = Instant::now();
        let sent = orders.sent.len() as u64;
        let due = interval.map_or(started, |i| started + i * sent as u32);
        if sent < posts
            && now >= due
            && let Some(key) = orders.idle_posters.pop()
        {
            // Paced: timed from when the POST was due, so a late send counts against the
            // latency instead of hiding it.
            orders.sent.push(if orders.paced { due } else { now });
            orders.last_send = now;
            load.send(key);
            continue;
        }
        let wait = if sent < posts && orders.paced {
            due.saturating_duration_since(now)
        } else {
            STALL
        };
        load.turn(Some(wait.min(Duration::from_millis(100))), &mut orders)?;
        check(load)?;
        if orders.unexplained > 0 {
            return Err(io::Error::other(
                "a subscriber received a total no POST caused",
            ));
        }
        let done = orders.deliveries + orders.responses;
        if done > progress.1 {
            progress = (Instant::now(), done);
        } else if progress.0.elapsed() > STALL {
            break;
        }
    }
    let cpu = meter.stop();
    if orders.converged < subscribers {
        return Err(io::Error::other(format!(
            "only {} of {subscribers} subscribers received the final total ({} of {posts} POSTs answered)",
            orders.converged, orders.responses
        )));
    }
    let seconds = orders
        .last_delivery
        .map_or(f64::INFINITY, |t| t.duration_since(started).as_secs_f64());
    Ok(Fanout {
        subscribers,
        posts,
        deliveries_per_second: orders.deliveries as f64 / seconds,
        frames_per_read: (load.frames - frames) as f64
            / (load.frame_reads - frame_reads).max(1) as f64,
        posts_per_second: match orders.sent.first() {
            Some(first) if orders.last_send > *first => {
                (orders.sent.len() - 1) as f64
                    / orders.last_send.duration_since(*first).as_secs_f64()
            }
            _ => 0.0,
        },
        latency: Latency::of(orders.micros),
        converged: orders.converged,
        conflated: orders.conflated,
        cpu,
    })
}

/// Idle WebSockets: the server's resident memory growth per connection at each count.
pub struct Idle {
    pub rss_kib: u64,
    pub bytes_per_conn: f64,
    pub open_seconds: f64,
}

/// Opens subscribers up to each of `counts` in turn, reading the server's memory at each,
/// then times one order's broadcast to all of them.
pub fn idle_then_broadcast(
    server: &ServerProc,
    net: u8,
    counts: &[usize],
) -> io::Result<(Vec<Idle>, Fanout)> {
    let mut load = Load::new(server.addr, net)?;
    let base = server.rss_kib()?;
    let mut idle = Vec::new();
    for &conns in counts {
        let started = Instant::now();
        load.open_subscribers(SUBSCRIBE, conns - load.subscribers())?;
        let rss_kib = server.rss_kib()?;
        idle.push(Idle {
            rss_kib,
            bytes_per_conn: (rss_kib.saturating_sub(base) * 1024) as f64 / conns as f64,
            open_seconds: started.elapsed().as_secs_f64(),
        });
    }
    let broadcast = deliver(server, &mut load, 1, 1, None)?;
    Ok((idle, broadcast))
}
