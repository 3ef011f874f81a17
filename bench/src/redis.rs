//! What Redis costs, and what mock-srv adds to it. Each figure stands beside its reference,
//! measured in the same run against the same `redis-server`:
//!
//! - `POST /orders/A1` through mock-srv on `--redis` from 50 connections, beside
//!   `redis-benchmark` sending Redis the same order script (`EVALSHA`, a fresh request id
//!   each time) from 50 clients: mock-srv should reach 0.8 of what Redis does alone.
//! - Fan-out: orders delivered to subscribers by one process, and by two processes sharing
//!   the subscribers.
//!
//! Redis runs on the load's cpu, mock-srv (and `redis-benchmark`, in its place) on the
//! server's: on a two-core machine the three share two cores.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mock_srv::state::redis::scripts::{self, Keys};

use crate::procs::{self, Cpus, Run, ServerProc};
use crate::scenarios::{self, Fanout, Throughput};

const ORDER: (&str, &str, Option<&str>) = ("POST", "/orders/A1", Some("{\"amount\":1}"));

/// One figure's rows, printed as a table of their own.
pub struct Rows(pub Vec<String>);

/// A `redis-server` of the bench's own, on a free port with its own folder.
struct RedisProc {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl RedisProc {
    fn start(cpus: Cpus) -> Result<RedisProc, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join("target/bench-redis");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = procs::spawn_on(&mut cmd, cpus.load, cpus)
            .map_err(|e| format!("redis-server (apt-get install redis-server): {e}"))?;
        let out = BufReader::new(child.stdout.take().expect("piped"));
        for line in out.lines() {
            if line.map_err(|e| e.to_string())?.contains("Ready to accept") {
                return Ok(RedisProc { child, port, dir });
            }
        }
        Err("redis-server did not start".into())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One command on a fresh connection; the reply's first line, or its bulk string.
    fn call(&self, args: &[&str]) -> Result<String, String> {
        let mut s =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut cmd = format!("*{}\r\n", args.len());
        for a in args {
            cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(cmd.as_bytes()).map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("Redis closed the connection".into());
            }
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply).into_owned();
            let mut lines = text.split("\r\n");
            let first = lines.next().unwrap_or("");
            match first.as_bytes().first() {
                Some(b'$') => {
                    if let Some(body) = lines.next().filter(|_| text.matches("\r\n").count() >= 2) {
                        return Ok(body.to_string());
                    }
                }
                Some(b'-') => return Err(first[1..].to_string()),
                Some(_) if text.contains("\r\n") => return Ok(first[1..].to_string()),
                _ => {}
            }
        }
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `redis-benchmark` measured.
struct Reference {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `redis-benchmark` sending the order script from `clients` clients.
fn reference(
    redis: &RedisProc,
    cpus: Cpus,
    clients: usize,
    requests: usize,
) -> Result<Reference, String> {
    let sha = redis.call(&["SCRIPT", "LOAD", scripts::ORDER])?;
    let keys = Keys::new("ms:", "electronics");
    let request = format!("{}__rand_int__", keys.request);
    let max = ((1u64 << 53) - 1).to_string();
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-h", "127.0.0.1", "-p", &redis.port.to_string()])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-r", "1000000000", "-q", "--csv"])
        .args(["EVALSHA", &sha, "5", &keys.totals, &keys.meta, &keys.log])
        .args([&request, &keys.products, "A1", "1", &max, &keys.channel])
        .args([scripts::LOG_LENGTH, scripts::REQUEST_TTL_SECS]);
    let out = procs::output_on(&mut cmd, cpus.server, cpus)
        .map_err(|e| format!("redis-benchmark (apt-get install redis-tools): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",...
    let row = text
        .lines()
        .find(|l| l.starts_with("\"EVALSHA"))
        .ok_or_else(|| format!("redis-benchmark said: {text}"))?;
    let fields: Vec<f64> = row
        .split("\",\"")
        .skip(1)
        .map(|f| f.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    match fields.as_slice() {
        [rps, _avg, _min, p50, _p95, p99, ..] => Ok(Reference {
            per_second: *rps,
            p50_ms: *p50,
            p99_ms: *p99,
        }),
        _ => Err(format!("redis-benchmark's CSV: {row}")),
    }
}

/// Measures every figure, `rounds` times each.
pub fn run(run: &Run) -> Result<Rows, String> {
    let Run {
        mock_srv,
        cpus,
        rounds,
        warmup,
        measure,
        quick,
    } = *run;
    let redis = RedisProc::start(cpus)?;
    let url = redis.url();
    let args = ["--port", "0", "--redis", url.as_str()];
    let mut rows = vec![
        "| figure | reference | mock-srv on Redis | mock-srv / reference | target |".to_string(),
        "|---|---:|---:|---:|---|".to_string(),
    ];
    let mut notes = Vec::new();

    let clients = 50;
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let server = ServerProc::start(mock_srv, &args, cpus).map_err(|e| e.to_string())?;
        let t = scenarios::throughput(&server, 210, ORDER, clients, warmup, measure)
            .map_err(|e| format!("Redis bench: {e}"))?;
        drop(server);
        let requests = (t.per_second * measure.as_secs_f64()).max(1000.0) as usize;
        let r = reference(&redis, cpus, clients, requests)?;
        ratios.push(t.per_second / r.per_second);
        ours.push(t);
        theirs.push(r);
    }
    let ratio = median(ratios.clone());
    let t = median_by(ours, |t: &Throughput| t.per_second);
    let r = median_by(theirs, |r: &Reference| r.per_second);
    let target = if quick {
        "(not judged)".to_string()
    } else {
        format!("≥ 0.80 {}", if ratio >= 0.8 { "✓" } else { "✗" })
    };
    let what = format!(
        "`POST /orders/A1`, {clients} connections (reference: `redis-benchmark -c {clients}` running the order script)"
    );
    rows.push(format!(
        "| {what}: requests/s | {:.0} | {:.0} | {ratio:.2} | {target} |",
        r.per_second, t.per_second
    ));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    rows.push(format!(
        "| {what}: latency p50 / p99, ms | {:.2} / {:.2} | {:.2} / {:.2} |  |  |",
        r.p50_ms,
        r.p99_ms,
        ms(t.latency.p50),
        ms(t.latency.p99)
    ));
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    notes.push(format!(
        "- {what}: mock-srv / reference in each round: {}",
        each.join(", ")
    ));

    let (subscribers, posts, posters) = if quick {
        (50, 100, 4)
    } else {
        (1_000, 2_000, 8)
    };
    let mut by_processes = Vec::new();
    for processes in [1, 2] {
        let mut runs = Vec::new();
        for round in 0..rounds.max(1) {
            let servers: Vec<ServerProc> = (0..processes)
                .map(|_| ServerProc::start(mock_srv, &args, cpus).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&ServerProc> = servers.iter().collect();
            let net = 220 + (processes * 10 + round % 10) as u8;
            let f = scenarios::fanout_spread(&refs, net, subscribers, posters, posts)
                .map_err(|e| format!("Redis fan-out: {e}"))?;
            runs.push(f);
        }
        by_processes.push(median_by(runs, |f: &Fanout| f.deliveries_per_second));
    }
    let [one, two] = [&by_processes[0], &by_processes[1]];
    let what = format!(
        "fan-out through Redis, {subscribers} subscribers, {posts} POSTs from {posters} connections"
    );
    rows.push(format!(
        "| {what}: deliveries/s, 1 process (reference) and 2 sharing the subscribers | {:.0} | {:.0} | {:.2} |  |",
        one.deliveries_per_second,
        two.deliveries_per_second,
        two.deliveries_per_second / one.deliveries_per_second
    ));
    rows.push(format!(
        "| {what}: latency p50 / p99, ms, 1 and 2 processes | {:.2} / {:.2} | {:.2} / {:.2} |  |  |",
        ms(one.latency.p50),
        ms(one.latency.p99),
        ms(two.latency.p50),
        ms(two.latency.p99)
    ));
    notes.push(format!(
        "- {what}: 1 process {}; 2 processes {}",
        one.verdict(),
        two.verdict()
    ));
    rows.push(String::new());
    rows.extend(notes);
    Ok(Rows(rows))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_by<T>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    v.swap_remove(v.len() / 2)
}
