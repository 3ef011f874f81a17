//! What the journal costs: `POST /orders/A1` from 50 connections (and 200, and 1), against
//! mock-srv in memory and mock-srv with `--journal` (on the disk the bench runs from), the
//! two alternating in each round as everywhere else. Orders per fsync come from the line
//! the journaled server logs when it stops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::procs::{Cpus, Run, ServerProc};
use crate::scenarios::{self, Throughput};

const ORDER: (&str, &str, Option<&str>) = ("POST", "/orders/A1", Some("{\"amount\":1}"));

/// One figure's rows, printed as a table of their own.
pub struct Rows(pub Vec<String>);

/// Measures both servers `rounds` times for each connection count.
pub fn run(run: &Run) -> Result<Rows, String> {
    let Run {
        mock_srv,
        cpus,
        rounds,
        warmup,
        measure,
        quick,
    } = *run;
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("target/bench-journal");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let journal = dir.join("orders.journal");
    let log = dir.join("server.log");
    let mut rows = vec![
        "| figure | in memory | --journal | journal / memory | target |".to_string(),
        "|---|---:|---:|---:|---|".to_string(),
    ];
    let mut notes = Vec::new();
    // 200: with one fdatasync per turn shared by the orders of the turn, the ratio grows
    // with the clients that wait at once.
    for conns in [50, 200, 1] {
        let (mut memory, mut journaled, mut ratios, mut per_fsync) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds.max(1) {
            let m = measure_one(mock_srv, &[], cpus, conns, warmup, measure, None)?;
            for f in [&journal, &snapshot(&journal)] {
                let _ = std::fs::remove_file(f);
            }
            let args = ["--journal", journal.to_str().ok_or("journal path")?];
            let j = measure_one(mock_srv, &args, cpus, conns, warmup, measure, Some(&log))?;
            per_fsync.push(orders_per_fsync(&log)?);
            ratios.push(j.per_second / m.per_second);
            memory.push(m);
            journaled.push(j);
        }
        let what = format!(
            "`POST /orders/A1`, {conns} keep-alive connection{}",
            if conns == 1 { "" } else { "s" }
        );
        let (m, j) = (median(memory), median(journaled));
        let ratio = median_f64(ratios.clone());
        let target = match (conns, quick) {
            (_, true) => "(not judged)".to_string(),
            (50, false) => format!("≥ 0.50 {}", if ratio >= 0.5 { "✓" } else { "✗" }),
            _ => String::new(),
        };
        rows.push(format!(
            "| {what}: requests/s | {:.0} | {:.0} | {ratio:.2} | {target} |",
            m.per_second, j.per_second
        ));
        rows.push(format!(
            "| {what}: latency p50 / p99, ms | {} | {} |  |  |",
            ms_pair(&m),
            ms_pair(&j)
        ));
        rows.push(format!(
            "| {what}: orders per fsync |  | {:.1} |  |  |",
            median_f64(per_fsync)
        ));
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        notes.push(format!(
            "- {what}: journal / memory in each round: {}",
            each.join(", ")
        ));
    }
    rows.push(String::new());
    rows.extend(notes);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Rows(rows))
}

fn measure_one(
    program: &Path,
    extra: &[&str],
    cpus: Cpus,
    conns: usize,
    warmup: Duration,
    measure: Duration,
    log: Option<&Path>,
) -> Result<Throughput, String> {
    let mut args = vec!["--port", "0"];
    args.extend_from_slice(extra);
    let server = ServerProc::start_logged(program, &args, cpus, log).map_err(|e| e.to_string())?;
    let t = scenarios::throughput(&server, 200, ORDER, conns, warmup, measure)
        .map_err(|e| format!("journal bench: {e}"))?;
    // Stopped (SIGTERM) here, so that the journaled server logs its figures.
    drop(server);
    Ok(t)
}

/// `N` in the `journal: R records in W writes, N per fsync` line of the server's log.
fn orders_per_fsync(log: &Path) -> Result<f64, String> {
    let text = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| {
            let rest = l.split("journal: ").nth(1)?;
            let (_, after) = rest.split_once(" writes, ")?;
            after.split(' ').next()?.parse().ok()
        })
        .ok_or_else(|| format!("no journal figures in the server's log: {text:?}"))
}

fn snapshot(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_os_string();
    name.push(".snapshot");
    PathBuf::from(name)
}

fn median(mut v: Vec<Throughput>) -> Throughput {
    v.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    v.swap_remove(v.len() / 2)
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms_pair(t: &Throughput) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!("{:.2} / {:.2}", ms(t.latency.p50), ms(t.latency.p99))
}
