//! `mock-srv-bench`: measures mock-srv beside the yardstick (a minimal mio server that does
//! no real work) in the same run, and prints one Markdown table of figures and ratios.
//!
//! Each figure starts a fresh server process pinned to one CPU, while this process (the load)
//! runs on another. The yardstick runs first, then mock-srv, figure by figure, so both meet
//! the same machine at nearly the same moment.

mod journal;
mod load;
mod procs;
mod redis;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use procs::{CpuShare, Cpus, ServerProc};
use scenarios::{Fanout, Latency};

const HELP: &str = "\
mock-srv-bench: mock-srv's speed and memory beside the yardstick, as one table

Usage: mock-srv-bench [--quick] [--only PART] [--seconds S] [--rounds N] [--idle N]
                      [--mock-srv PATH] [--yardstick PATH]

  --quick            a short run with small counts that proves the bench works
  --only PART        one part: requests, fanout, paced, idle, journal or redis
                     (default: all)
  --seconds S        how long each request-throughput figure is measured (default 3)
  --rounds N         rounds per figure, alternating the servers; the median is shown
                     (default 5; idle memory and broadcast run once)
  --idle N           the largest count of idle WebSockets (default 100000)
  --mock-srv PATH    the server to measure (default target/release/mock-srv)
  --yardstick PATH   the yardstick server (default target/release/yardstick)
";

const PARTS: [&str; 6] = ["requests", "fanout", "paced", "idle", "journal", "redis"];

struct Options {
    quick: bool,
    only: Option<String>,
    seconds: f64,
    rounds: usize,
    idle: usize,
    mock_srv: PathBuf,
    yardstick: PathBuf,
}

fn options() -> Result<Options, lexopt::Error> {
    use lexopt::prelude::*;
    let mut o = Options {
        quick: false,
        only: None,
        seconds: 3.0,
        rounds: 5,
        idle: 100_000,
        mock_srv: "target/release/mock-srv".into(),
        yardstick: "target/release/yardstick".into(),
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("quick") => o.quick = true,
            Long("only") => {
                let part = parser.value()?.string()?;
                if !PARTS.contains(&part.as_str()) {
                    return Err(format!("--only takes one of {PARTS:?}").into());
                }
                o.only = Some(part);
            }
            Long("seconds") => o.seconds = parser.value()?.parse()?,
            Long("rounds") => o.rounds = parser.value()?.parse()?,
            Long("idle") => o.idle = parser.value()?.parse()?,
            Long("mock-srv") => o.mock_srv = parser.value()?.into(),
            Long("yardstick") => o.yardstick = parser.value()?.into(),
            Long("help") => {
                print!("{HELP}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(o)
}

/// The two servers of every figure, yardstick first.
struct Servers {
    programs: [(PathBuf, Vec<&'static str>); 2],
    cpus: Cpus,
    /// Distinct loopback source addresses per load, so that no run meets another's ports.
    next_net: u8,
}

impl Options {
    fn runs(&self, part: &str) -> bool {
        self.only.as_ref().is_none_or(|p| p == part)
    }
}

impl Servers {
    /// Runs `measure` against a fresh yardstick, then a fresh mock-srv.
    fn each<T>(
        &mut self,
        mut measure: impl FnMut(&ServerProc, u8) -> std::io::Result<T>,
    ) -> Result<[T; 2], String> {
        let mut out = Vec::new();
        for (program, args) in &self.programs {
            self.next_net = self.next_net % 250 + 1;
            let server = ServerProc::start(program, args, self.cpus).map_err(|e| e.to_string())?;
            let name = program
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            out.push(measure(&server, self.next_net).map_err(|e| format!("{name}: {e}"))?);
        }
        Ok(out.try_into().ok().expect("two servers"))
    }

    /// Runs `measure` `rounds` times against each server, alternating, and keeps for each
    /// server the round with the median `key`, and the ratio of `key` (mock-srv / yardstick)
    /// in each round: one run on a shared machine can be off by 15% or more.
    fn median<T>(
        &mut self,
        rounds: usize,
        key: impl Fn(&T) -> f64,
        mut measure: impl FnMut(&ServerProc, u8) -> std::io::Result<T>,
    ) -> Result<Rounds<T>, String> {
        let mut runs: [Vec<T>; 2] = [Vec::new(), Vec::new()];
        let mut ratios = Vec::new();
        for _ in 0..rounds.max(1) {
            let [y, m] = self.each(&mut measure)?;
            ratios.push(key(&m) / key(&y));
            runs[0].push(y);
            runs[1].push(m);
        }
        let median = runs.map(|mut v| {
            v.sort_by(|a, b| key(a).total_cmp(&key(b)));
            v.swap_remove(v.len() / 2)
        });
        Ok(Rounds { median, ratios })
    }
}

/// Each server's median round, and mock-srv / yardstick in each round.
struct Rounds<T> {
    median: [T; 2],
    ratios: Vec<f64>,
}

impl<T> Rounds<T> {
    /// The median of the rounds' ratios. Each round's pair ran back to back, so this is
    /// steadier than the ratio of the medians when the machine's speed drifts.
    fn ratio(&self) -> f64 {
        let mut r = self.ratios.clone();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    }

    /// A note with every round's ratio, to show the spread.
    fn spread(&self, what: &str) -> String {
        let each: Vec<String> = self.ratios.iter().map(|r| format!("{r:.2}")).collect();
        format!(
            "{what}: mock-srv / yardstick in each round: {}",
            each.join(", ")
        )
    }
}

struct Table {
    rows: Vec<[String; 7]>,
    notes: Vec<String>,
    quick: bool,
}

impl Table {
    fn row(
        &mut self,
        figure: String,
        values: [String; 2],
        ratio: String,
        target: String,
        cpu: [CpuShare; 2],
    ) {
        let cpu = cpu.map(|c| {
            if c.server == 0.0 && c.load == 0.0 {
                String::new()
            } else {
                format!("{:.0}% / {:.0}%", c.server, c.load)
            }
        });
        let [y, m] = values;
        let [cy, cm] = cpu;
        self.rows.push([figure, y, m, ratio, target, cy, cm]);
    }

    /// A rate where higher is better, with the ratio to the yardstick and an optional target
    /// for that ratio.
    fn rate(
        &mut self,
        figure: String,
        rates: [f64; 2],
        ratio: f64,
        min_ratio: Option<f64>,
        cpu: [CpuShare; 2],
    ) -> f64 {
        let target = match min_ratio {
            Some(min) => self.verdict(format!("≥ {min:.2}"), ratio >= min),
            None => String::new(),
        };
        self.row(
            figure,
            rates.map(thousands),
            format!("{ratio:.2}"),
            target,
            cpu,
        );
        ratio
    }

    fn verdict(&self, target: String, met: bool) -> String {
        match (self.quick, met) {
            (true, _) => format!("{target} (not judged)"),
            (false, true) => format!("{target} ✓"),
            (false, false) => format!("{target} ✗"),
        }
    }

    fn print(&self) {
        println!(
            "| figure | yardstick | mock-srv | mock-srv / yardstick | target | cpu server / load (yardstick) | cpu server / load (mock-srv) |"
        );
        println!("|---|---:|---:|---:|---|---:|---:|");
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
        println!();
        for note in &self.notes {
            println!("- {note}");
        }
    }
}

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn latencies(l: Latency) -> String {
    format!("{} / {} / {}", ms(l.p50), ms(l.p99), ms(l.max))
}

fn count(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mock-srv-bench: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-srv-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Measures every figure and prints the table. Fails when a server did not deliver the
/// final total to every subscriber (a correctness failure, not a slow figure).
fn run(o: &Options) -> Result<(), String> {
    let cpus = Cpus::pick();
    let biggest = if o.quick { 1_000 } else { o.idle };
    let fds = procs::raise_fd_limit(biggest as u64 + 1_000);
    procs::pin_load(cpus);
    let mut servers = Servers {
        programs: [
            (o.yardstick.clone(), vec!["--port", "0"]),
            (o.mock_srv.clone(), vec!["--port", "0"]),
        ],
        cpus,
        next_net: 0,
    };
    let mut table = Table {
        rows: Vec::new(),
        notes: Vec::new(),
        quick: o.quick,
    };
    let (warmup, measure) = if o.quick {
        (Duration::from_millis(100), Duration::from_millis(300))
    } else {
        (Duration::from_secs(1), Duration::from_secs_f64(o.seconds))
    };
    let rounds = if o.quick { 1 } else { o.rounds };

    if o.runs("requests") {
        eprintln!("request throughput...");
        for (method, path, body) in [
            ("POST", "/orders/A1", Some("{\"amount\":1}")),
            ("GET", "/electronics", None),
        ] {
            let rounds = servers.median(
                rounds,
                |t: &scenarios::Throughput| t.per_second,
                |s, net| scenarios::throughput(s, net, (method, path, body), 50, warmup, measure),
            )?;
            let r = &rounds.median;
            let what = format!("`{method} {path}`, 50 keep-alive connections: requests/s");
            table.notes.push(rounds.spread(&what));
            table.rate(
                what,
                [r[0].per_second, r[1].per_second],
                rounds.ratio(),
                Some(0.8),
                [r[0].cpu, r[1].cpu],
            );
        }
    }

    if o.runs("fanout") {
        let fan = if o.quick {
            vec![(100, 50)]
        } else {
            vec![(1_000, 3_000), (10_000, 300)]
        };
        for (subscribers, posts) in fan {
            for posters in [1, 8] {
                eprintln!("fan-out to {subscribers} subscribers from {posters} posters...");
                let rounds = servers.median(
                    rounds,
                    |f: &Fanout| f.deliveries_per_second,
                    |s, net| scenarios::fanout(s, net, subscribers, posters, posts, None),
                )?;
                let r = &rounds.median;
                let what = format!(
                    "fan-out, {} subscribers, {posts} POSTs from {posters} connection{}",
                    count(subscribers),
                    if posters == 1 { "" } else { "s" }
                );
                let rates = [r[0].deliveries_per_second, r[1].deliveries_per_second];
                let ratio = rounds.ratio();
                table
                    .notes
                    .push(rounds.spread(&format!("{what}: deliveries/s")));
                let mut target = table.verdict("≥ 0.90".into(), ratio >= 0.9);
                if subscribers == 1_000 && posters == 8 {
                    target = table.verdict(
                        "≥ 0.90 and ≥ 1,000,000/s".into(),
                        ratio >= 0.9 && rates[1] >= 1e6,
                    );
                }
                table.row(
                    format!("{what}: deliveries/s"),
                    rates.map(thousands),
                    format!("{ratio:.2}"),
                    target,
                    [r[0].cpu, r[1].cpu],
                );
                table.row(
                    format!("{what}: updates per write (frames per subscriber read)"),
                    [
                        format!("{:.2}", r[0].frames_per_read),
                        format!("{:.2}", r[1].frames_per_read),
                    ],
                    String::new(),
                    String::new(),
                    [CpuShare::default(); 2],
                );
                table.row(
                    format!("{what}: latency p50 / p99 / max, ms"),
                    [latencies(r[0].latency), latencies(r[1].latency)],
                    String::new(),
                    String::new(),
                    [CpuShare::default(); 2],
                );
                note_delivery(&mut table, &what, [&r[0], &r[1]]);
            }
        }
    }

    if o.runs("paced") {
        let (subscribers, posts, rate, posters) = if o.quick {
            (100, 200, 1_000, 8)
        } else {
            (1_000, 3_000, 1_000, 8)
        };
        eprintln!("paced orders to {subscribers} subscribers...");
        let r = servers
            .median(
                rounds,
                |f: &Fanout| f.latency.p99.as_secs_f64(),
                |s, net| scenarios::fanout(s, net, subscribers, posters, posts, Some(rate)),
            )?
            .median;
        let what = format!(
            "{} subscribers, a POST due every {} µs from {posters} connections ({} POSTs)",
            count(subscribers),
            1_000_000 / rate,
            posts
        );
        let met = r[1].latency.p99 <= Duration::from_millis(20)
            && r[1].posts_per_second >= 0.95 * rate as f64;
        let target = table.verdict(
            format!("p99 ≤ 20 ms at {} POSTs/s", thousands(rate as f64)),
            met,
        );
        table.row(
            format!("{what}: latency p50 / p99 / max, ms"),
            [latencies(r[0].latency), latencies(r[1].latency)],
            String::new(),
            target,
            [r[0].cpu, r[1].cpu],
        );
        table.row(
            format!("{what}: POSTs/s achieved"),
            [
                thousands(r[0].posts_per_second),
                thousands(r[1].posts_per_second),
            ],
            String::new(),
            String::new(),
            [CpuShare::default(); 2],
        );
        note_delivery(&mut table, &what, [&r[0], &r[1]]);
    }

    if o.runs("idle") {
        // The server and the load are separate processes, each needing a descriptor per
        // connection and a few more.
        let possible = (fds as usize).saturating_sub(200) / 1000 * 1000;
        let largest = if biggest > possible {
            table.notes.push(format!(
                "{} idle WebSockets asked for, but the descriptor limit is {fds} per process \
                 (raising it needs CAP_SYS_RESOURCE): measured at {} instead",
                count(biggest),
                count(possible)
            ));
            possible
        } else {
            biggest
        };
        let mut counts = vec![biggest / 10, largest];
        counts.retain(|&c| c > 0);
        counts.dedup();
        eprintln!("idle WebSockets: {counts:?}...");
        let r = servers.each(|s, net| scenarios::idle_then_broadcast(s, net, &counts))?;
        for (i, &conns) in counts.iter().enumerate() {
            let (y, m) = (&r[0].0[i], &r[1].0[i]);
            let target = table.verdict("≤ 2,048".into(), m.bytes_per_conn <= 2048.0);
            table.row(
                format!(
                    "{} idle WebSockets: server memory (RSS growth) per connection, bytes",
                    count(conns)
                ),
                [
                    format!("{:.0}", y.bytes_per_conn),
                    format!("{:.0}", m.bytes_per_conn),
                ],
                String::new(),
                target,
                [CpuShare::default(); 2],
            );
            table.notes.push(format!(
            "{} idle WebSockets: server RSS {} KiB (yardstick {} KiB); opened in {:.1} s ({:.1} s for the yardstick)",
            count(conns),
            thousands(m.rss_kib as f64),
            thousands(y.rss_kib as f64),
            m.open_seconds,
            y.open_seconds
        ));
        }
        let (y, m) = (&r[0].1, &r[1].1);
        let what = format!(
            "broadcast of one POST to {} subscribers",
            count(m.subscribers)
        );
        table.row(
            format!("{what}: ms until the last has it (median)"),
            [
                format!("{} ({})", ms(y.latency.max), ms(y.latency.p50)),
                format!("{} ({})", ms(m.latency.max), ms(m.latency.p50)),
            ],
            format!(
                "{:.2}",
                m.latency.max.as_secs_f64() / y.latency.max.as_secs_f64()
            ),
            String::new(),
            [y.cpu, m.cpu],
        );
        note_delivery(&mut table, &what, [y, m]);
    }

    let run = procs::Run {
        mock_srv: &o.mock_srv,
        cpus,
        rounds,
        warmup,
        measure,
        quick: o.quick,
    };
    let journal = if o.runs("journal") {
        eprintln!("the journal's cost...");
        Some(journal::run(&run)?)
    } else {
        None
    };
    let redis = if o.runs("redis") {
        eprintln!("Redis...");
        Some(redis::run(&run)?)
    } else {
        None
    };

    println!(
        "{}; mock-srv logging at its default level.\n",
        cpus.describe()
    );
    if !table.rows.is_empty() {
        table.print();
    }
    if let Some(journal::Rows(rows)) = journal {
        println!(
            "\nThe journal: mock-srv in memory and with `--journal` (group commit, one fdatasync per loop turn), alternating in each round.\n"
        );
        for row in rows {
            println!("{row}");
        }
    }
    if let Some(redis::Rows(rows)) = redis {
        println!(
            "\nRedis: mock-srv on `--redis` beside the reference measured in the same run against the same redis-server (on the load's cpu; mock-srv and redis-benchmark on the server's).\n"
        );
        for row in rows {
            println!("{row}");
        }
    }
    Ok(())
}

/// Notes how completely both servers delivered (one that did not converge has already
/// failed the run).
fn note_delivery(table: &mut Table, what: &str, r: [&Fanout; 2]) {
    table.notes.push(format!(
        "{what}: yardstick {}; mock-srv {}",
        r[0].verdict(),
        r[1].verdict()
    ));
}
