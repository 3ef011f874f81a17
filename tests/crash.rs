//! The crash test (`make crash`, part of `make test`): mock-srv with `--journal`, under
//! orders and product additions from several connections at once, killed with SIGKILL at a
//! random moment, restarted on the same file, round after round. After every restart:
//!
//! - every order that got a 200 is in the totals, and every product that got a 201 exists;
//! - an order that was never answered (the kill came first) counts once or not at all, and
//!   a refused one (400, 404) not at all: what a total holds beyond its acknowledged orders
//!   must be the sum of some of its unanswered ones, each at most once;
//! - a new subscriber's first totals are exactly those totals.
//!
//! The journal is compacted every few KiB, so kills also land in and around compactions.
//! `MOCK_SRV_BIN` names the binary (the release build under `make crash`),
//! `CRASH_ROUNDS` the number of rounds (default 30).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(5);
const POSTERS: usize = 6;

/// What the clients know: per product, the total its acknowledged orders make, and the
/// amounts of orders sent but never answered.
#[derive(Debug, Default)]
struct Known {
    acked: BTreeMap<String, u64>,
    unanswered: BTreeMap<String, Vec<u64>>,
    /// Products added without an answer, per category: they may or may not exist.
    unanswered_products: BTreeMap<String, usize>,
    /// The highest total a subscriber was pushed, per product: pushes go out only once a
    /// change is on disk, so no restart may come back below them.
    pushed: BTreeMap<String, u64>,
    orders_acked: u64,
    orders_refused: u64,
    orders_unanswered: u64,
    unanswered_applied: u64,
    products_added: u64,
}

fn main() {
    let bin = std::env::var("MOCK_SRV_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_mock-srv").to_string());
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(30);
    let dir = std::env::temp_dir().join(format!("mock-srv-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("orders.journal");
    let mut rng = Rng(std::process::id() as u64 * 2654435761 + 1);

    let mut known = Known::default();
    for (id, total) in [("A1", 3), ("A2", 7), ("B1", 101)] {
        known.acked.insert(id.into(), total);
    }
    for round in 0..=rounds {
        let (mut server, addr) = start(&bin, &journal);
        check_restart(addr, &mut known, round);
        if round == rounds {
            terminate(&mut server.0);
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(std::mem::take(&mut known)));
        let ids: Vec<String> = shared.lock().unwrap().acked.keys().cloned().collect();
        let listeners: Vec<_> = ["electronics", "confectionery"]
            .into_iter()
            .map(|category| std::thread::spawn(move || listen_until_killed(addr, category)))
            .collect();
        let workers: Vec<_> = (0..POSTERS)
            .map(|n| {
                let (stop, shared, ids) = (stop.clone(), shared.clone(), ids.clone());
                let seed = rng.next();
                std::thread::spawn(move || post_until_killed(addr, n, &ids, seed, &stop, &shared))
            })
            .collect();
        // The kill comes at a random moment of the load, between 20 and 150 ms in.
        std::thread::sleep(Duration::from_millis(20 + rng.next() % 130));
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
        known = Arc::try_unwrap(shared).unwrap().into_inner().unwrap();
        for listener in listeners {
            for (id, total) in listener.join().unwrap() {
                let max = known.pushed.entry(id).or_default();
                *max = (*max).max(total);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "crash test: {rounds} rounds killed with SIGKILL; {} orders acknowledged, {} refused, \
         {} unanswered ({} of them applied); {} products added; 0 acknowledged changes lost",
        known.orders_acked,
        known.orders_refused,
        known.orders_unanswered,
        known.unanswered_applied,
        known.products_added
    );
}

/// Reads the totals a new subscriber sees and checks them against what the clients know;
/// then what happened to the unanswered changes is settled, and the totals become known.
fn check_restart(addr: SocketAddr, known: &mut Known, round: usize) {
    let mut seen = BTreeMap::new();
    for category in ["electronics", "confectionery"] {
        let listing = request(
            addr,
            &format!("GET /{category} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        )
        .expect("the listing after a restart");
        let listed = listing.1.as_array().unwrap().len();
        let totals = subscribe(addr, category, listed);
        let new_ones = totals
            .keys()
            .filter(|id| !known.acked.contains_key(*id))
            .count();
        let may = known
            .unanswered_products
            .get(category)
            .copied()
            .unwrap_or(0);
        assert!(
            new_ones <= may,
            "round {round}: {new_ones} products in {category} nobody added ({may} unanswered)"
        );
        seen.extend(totals);
    }
    for (id, &acked) in &known.acked {
        let total = *seen
            .get(id)
            .unwrap_or_else(|| panic!("round {round}: acknowledged product {id} is gone"));
        assert!(
            total >= acked,
            "round {round}: {id} is {total}, but acknowledged orders make {acked}: lost"
        );
        let pushed = known.pushed.get(id).copied().unwrap_or(0);
        assert!(
            total >= pushed,
            "round {round}: {id} is {total}, but a subscriber was pushed {pushed}: lost"
        );
        let extra = total - acked;
        let pending = known.unanswered.get(id).map_or(&[][..], Vec::as_slice);
        let applied = subset_with_sum(pending, extra).unwrap_or_else(|| {
            panic!(
                "round {round}: {id} is {total}: {extra} more than acknowledged, which no set \
                 of its unanswered orders {pending:?} makes (counted twice, or a refused one)"
            )
        });
        known.unanswered_applied += applied as u64;
    }
    for (id, total) in seen {
        if !known.acked.contains_key(&id) {
            assert_eq!(
                total, 0,
                "round {round}: unanswered new product {id} has orders"
            );
        }
        known.acked.insert(id, total);
    }
    known.unanswered.clear();
    known.unanswered_products.clear();
}

/// One connection's load: orders (a few refused on purpose) and now and then a product,
/// one at a time, until the server is killed.
fn post_until_killed(
    addr: SocketAddr,
    n: usize,
    ids: &[String],
    seed: u64,
    stop: &AtomicBool,
    known: &Mutex<Known>,
) {
    let mut rng = Rng(seed | 1);
    let Ok(mut conn) = Conn::open(addr) else {
        return;
    };
    while !stop.load(Ordering::SeqCst) {
        let pick = rng.next();
        if n == 0 && pick.is_multiple_of(10) {
            let category = if pick.is_multiple_of(20) {
                "electronics"
            } else {
                "confectionery"
            };
            let body = format!(r#"{{"name":"P{pick}","rrp":"1.00","info":"crash test"}}"#);
            let sent = conn.post(&format!("/{category}"), &body);
            let mut k = known.lock().unwrap();
            match sent {
                Some((201, listing)) => {
                    let last = listing.as_array().unwrap().last().unwrap();
                    k.acked.insert(last["id"].as_str().unwrap().into(), 0);
                    k.products_added += 1;
                }
                // The category is full (1,000 products): refused, nothing added.
                Some((409, _)) => k.orders_refused += 1,
                Some((status, body)) => panic!("adding a product: {status} {body}"),
                None => {
                    *k.unanswered_products.entry(category.into()).or_default() += 1;
                    return;
                }
            }
            continue;
        }
        // One order in 16 is refused: a product that does not exist, or too few orders
        // to take back.
        let (id, amount) = match pick % 16 {
            0 => ("Z9".to_string(), 1),
            1 => (ids[pick as usize % ids.len()].clone(), -1_000_000_000),
            _ => (
                ids[pick as usize % ids.len()].clone(),
                1 + (pick >> 8) as i64 % 9,
            ),
        };
        let sent = conn.post(
            &format!("/orders/{id}"),
            &format!(r#"{{"amount":{amount}}}"#),
        );
        let mut k = known.lock().unwrap();
        match sent {
            Some((200, _)) => {
                *k.acked.get_mut(&id).unwrap() += amount as u64;
                k.orders_acked += 1;
            }
            Some((400 | 404, _)) if amount < 0 || id == "Z9" => k.orders_refused += 1,
            Some((status, body)) => panic!("order {id} {amount}: {status} {body}"),
            None => {
                if amount > 0 && id != "Z9" {
                    k.unanswered.entry(id).or_default().push(amount as u64);
                }
                k.orders_unanswered += 1;
                return;
            }
        }
    }
}

/// Subscribes to `category` and returns the highest total pushed for each product before
/// the connection ended.
fn listen_until_killed(addr: SocketAddr, category: &str) -> BTreeMap<String, u64> {
    let mut seen = BTreeMap::new();
    let Ok(stream) = TcpStream::connect(addr) else {
        return seen;
    };
    let url = format!("ws://localhost:{}/orders/{category}", addr.port());
    let Ok((mut ws, _)) = tungstenite::client(url, stream) else {
        return seen;
    };
    while let Ok(msg) = ws.read() {
        let Ok(text) = msg.to_text() else { continue };
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        if let (Some(id), Some(total)) = (v["id"].as_str(), v["total"].as_u64()) {
            let max = seen.entry(id.to_string()).or_default();
            *max = (*max).max(total);
        }
    }
    seen
}

/// How many of `amounts` (each used at most once) add up to `sum`, if some do.
fn subset_with_sum(amounts: &[u64], sum: u64) -> Option<u32> {
    (0u32..1 << amounts.len())
        .filter(|mask| {
            let s: u64 = (0..amounts.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| amounts[i])
                .sum();
            s == sum
        })
        .map(u32::count_ones)
        .min()
}

/// The server process, killed if the test fails with it running.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server on the journal and returns it with its address.
fn start(bin: &str, journal: &std::path::Path) -> (Server, SocketAddr) {
    let mut child = Command::new(bin)
        .args([
            "--port",
            "0",
            "--journal-compact-bytes",
            "4096",
            "--journal",
        ])
        .arg(journal)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mock-srv");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("mock-srv did not start: {line:?}"));
    (Server(child), addr)
}

fn terminate(child: &mut Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
}

/// The first totals a subscriber to `category` receives.
fn subscribe(addr: SocketAddr, category: &str, n: usize) -> BTreeMap<String, u64> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let url = format!("ws://localhost:{}/orders/{category}", addr.port());
    let (mut ws, _) = tungstenite::client(url, stream).expect("handshake");
    (0..n)
        .map(|_| {
            let msg = ws.read().expect("a first total");
            let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["total"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// One request on a fresh connection.
fn request(addr: SocketAddr, raw: &str) -> Option<(u16, Value)> {
    let mut conn = Conn::open(addr).ok()?;
    conn.send(raw)
}

/// A keep-alive HTTP connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    fn post(&mut self, path: &str, body: &str) -> Option<(u16, Value)> {
        self.send(&format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// Sends a request and reads its response; `None` when the connection ends first.
    fn send(&mut self, raw: &str) -> Option<(u16, Value)> {
        self.reader.get_mut().write_all(raw.as_bytes()).ok()?;
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status = line.split(' ').nth(1)?.parse().ok()?;
        let mut length = 0;
        loop {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).ok()?;
        Some((status, serde_json::from_slice(&body).ok()?))
    }
}

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
