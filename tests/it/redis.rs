//! Several mock-srv processes on one real `redis-server` (Debian's; `.ci/run` installs it),
//! each test with its own Redis on a free port and its own data folder.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};

use mock_srv::state::redis::scripts::{self, Keys};

use crate::helpers::*;
use crate::ops::{run, spawn, terminate};

/// A `redis-server` of the test's own, stopped (and its folder removed) when dropped.
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` on a free port in a new folder; `aof`: `appendonly yes` with
    /// `appendfsync always` (nothing acknowledged is lost when it is killed).
    pub fn start(aof: bool) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "mock-srv-redis-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self::start_in(dir, free_port(), aof)
    }

    fn start_in(dir: PathBuf, port: u16, aof: bool) -> RedisServer {
        let aof = if aof { "yes" } else { "no" };
        let mut cmd = Command::new("redis-server");
        crate::ops::dies_with_test(&mut cmd);
        let mut child = cmd
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", aof, "--appendfsync", "always"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut said = Vec::new();
        for line in out.lines() {
            let line = line.unwrap();
            if line.contains("Ready to accept connections") {
                return RedisServer { child, port, dir };
            }
            said.push(line);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start:\n{}", said.join("\n"));
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same port and folder (with AOF: the same data).
    pub fn restart(mut self, aof: bool) -> RedisServer {
        self.kill();
        let (dir, port) = (std::mem::take(&mut self.dir), self.port);
        std::mem::forget(self);
        RedisServer::start_in(dir, port, aof)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// `n` mock-srv processes on `redis`.
fn processes(redis: &RedisServer, n: usize) -> Vec<(Child, SocketAddr)> {
    let url = redis.url();
    (0..n).map(|_| spawn(&["--redis", &url])).collect()
}

/// A mock-srv process on `redis` whose log lines arrive on the receiver.
fn spawn_logged(redis: &RedisServer) -> (Child, SocketAddr, Receiver<String>) {
    let mut child = crate::ops::mock_srv()
        .args(["--port", "0", "--redis", &redis.url()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = crate::ops::first_line(&mut child);
    let (tx, rx) = channel();
    let err = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, crate::ops::listening_addr(&line), rx)
}

/// Waits (up to the timeout) for a log line containing `text`.
fn wait_for_log(log: &Receiver<String>, text: &str) {
    loop {
        let line = log
            .recv_timeout(TIMEOUT * 2)
            .unwrap_or_else(|_| panic!("no log line with {text:?}"));
        if line.contains(text) {
            return;
        }
    }
}

/// A WebSocket subscriber of electronics on each process, past its first totals (the
/// data's: every test starts on an empty Redis).
fn subscribe_each(procs: &[(Child, SocketAddr)]) -> Vec<Ws> {
    procs
        .iter()
        .map(|(_, addr)| {
            let mut ws = ws_connect(*addr, "/orders/electronics");
            assert_eq!(initial_totals(&mut ws, 2), totals(&[("A1", 3), ("A2", 7)]));
            ws
        })
        .collect()
}

fn stop(procs: Vec<(Child, SocketAddr)>) {
    for (child, _) in procs {
        assert_eq!(terminate(child), 0);
    }
}

#[test]
fn a_post_on_one_process_reaches_the_subscribers_of_all() {
    let redis = RedisServer::start(false);
    let procs = processes(&redis, 3);
    let mut subs: Vec<Ws> = procs
        .iter()
        .map(|(_, addr)| ws_connect(*addr, "/orders/electronics"))
        .collect();
    let mut events = Events::open(procs[2].1, "/orders/electronics", "");
    for ws in &mut subs {
        assert_eq!(initial_totals(ws, 2), totals(&[("A1", 3), ("A2", 7)]));
    }
    events.next_total();
    events.next_total();
    order(procs[0].1, "A1", 10);
    for ws in &mut subs {
        assert_eq!(next_total(ws), ("A1".into(), 13));
    }
    assert_eq!(events.next_total(), ("A1".into(), 13));
    // Every process reads the same total; the refusals are the script's.
    for (_, addr) in &procs {
        assert_eq!(get(*addr, "/orders/A1").body, r#"{"id":"A1","total":13}"#);
    }
    let r = post_json(procs[1].1, "/orders/A1", r#"{"amount":-14}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().contains("(13) to -1"));
    order(procs[1].1, "A1", -13);
    assert_eq!(next_total(&mut subs[0]), ("A1".into(), 0));
    stop(procs);
}

/// Posters on every process at once: each subscriber sees totals that only grow, ending at
/// the exact sum of the orders that got a 200; products added at once get distinct ids.
#[test]
fn concurrent_changes_on_every_process_add_up_exactly() {
    let redis = RedisServer::start(false);
    let procs = processes(&redis, 3);
    let mut subs = subscribe_each(&procs);
    let posters: Vec<_> = procs
        .iter()
        .map(|(_, addr)| {
            let addr = *addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let post = order_request(2, "");
                let mut acknowledged = 0;
                for _ in 0..200 {
                    if c.request(&post).status == 200 {
                        acknowledged += 2;
                    }
                }
                let product = post_json(
                    addr,
                    "/electronics",
                    &format!(
                        r#"{{"name":"Fan {}","rrp":"1.00","info":"i"}}"#,
                        addr.port()
                    ),
                );
                assert_eq!(product.status, 201, "{}", product.body);
                acknowledged
            })
        })
        .collect();
    let sum: u64 = posters.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(sum, 1200, "every order acknowledged");
    for ws in &mut subs {
        let mut last = 3;
        let mut new_ids = Vec::new();
        while last < 3 + sum || new_ids.len() < 3 {
            let (id, total) = next_total(ws);
            if id == "A1" {
                assert!(total > last, "A1 went from {last} to {total}");
                last = total;
            } else if id != "A2" {
                assert_eq!(total, 0);
                new_ids.push(id);
            }
        }
        assert_eq!(last, 3 + sum);
        new_ids.sort();
        assert_eq!(new_ids, ["A3", "A4", "A5"]);
    }
    for (_, addr) in &procs {
        let listing = get(*addr, "/electronics").json();
        assert_eq!(listing.as_array().unwrap().len(), 5, "{listing}");
    }
    stop(procs);
}

#[test]
fn redis_unreachable_at_start_is_a_clear_error() {
    let port = free_port().to_string();
    let (code, _, err) = run(&[
        "--port",
        "0",
        "--redis",
        &format!("redis://127.0.0.1:{port}"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot reach Redis at 127.0.0.1:"), "{err}");
    let (code, _, err) = run(&["--redis", "http://x"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not redis://HOST[:PORT][/DB]"), "{err}");
}

/// Redis killed while orders arrive: 503 while it is down, nothing acknowledged lost once
/// it is back (AOF), and subscribers converge on its totals without reconnecting.
#[test]
fn redis_lost_and_back_loses_nothing_acknowledged() {
    let mut redis = RedisServer::start(true);
    let (poster, poster_addr, poster_log) = spawn_logged(&redis);
    let procs = vec![(poster, poster_addr), spawn(&["--redis", &redis.url()])];
    let mut ws = ws_connect(procs[1].1, "/orders/electronics");
    initial_totals(&mut ws, 2);
    order(procs[0].1, "A1", 10);
    assert_eq!(next_total(&mut ws), ("A1".into(), 13));
    redis.kill();
    let r = post_json(procs[0].1, "/orders/A1", r#"{"amount":1}"#);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.json()["message"].as_str().unwrap().contains("Redis"));
    assert_eq!(get(procs[0].1, "/healthz").status, 503);
    wait_for_log(&poster_log, "Redis command link down");
    let redis = redis.restart(true);
    // Back: the order is taken again and reaches the subscriber of the other process on the
    // same WebSocket, after the total acknowledged before the crash.
    wait_for_log(&poster_log, "Redis command link back");
    order(procs[0].1, "A1", 5);
    loop {
        let (id, total) = next_total(&mut ws);
        if id == "A1" && total == 18 {
            break;
        }
        assert!(total <= 18, "{id} {total}");
    }
    drop(redis);
    stop(procs);
}

/// Redis restarted empty: the processes seed it again (a new epoch) and every subscriber
/// gets the fresh totals, without reconnecting.
#[test]
fn redis_restarted_empty_starts_a_new_epoch() {
    let redis = RedisServer::start(false);
    let procs = processes(&redis, 2);
    let mut subs = subscribe_each(&procs);
    order(procs[0].1, "A1", 10);
    for ws in &mut subs {
        assert_eq!(next_total(ws), ("A1".into(), 13));
    }
    let redis = redis.restart(false);
    for ws in &mut subs {
        // Every total of the new epoch, in id order: the data's again.
        assert_eq!(initial_totals(ws, 2), totals(&[("A1", 3), ("A2", 7)]));
    }
    order(procs[1].1, "A2", 1);
    for ws in &mut subs {
        assert_eq!(next_total(ws), ("A2".into(), 8));
    }
    drop(redis);
    stop(procs);
}

/// One process killed: the others, and their subscribers, carry on.
#[test]
fn one_process_killed_leaves_the_others_serving() {
    let redis = RedisServer::start(false);
    let mut procs = processes(&redis, 3);
    let mut ws = ws_connect(procs[2].1, "/orders/electronics");
    initial_totals(&mut ws, 2);
    let (mut killed, _) = procs.remove(0);
    killed.kill().unwrap();
    killed.wait().unwrap();
    order(procs[0].1, "A2", 3);
    assert_eq!(next_total(&mut ws), ("A2".into(), 10));
    stop(procs);
}

impl RedisServer {
    /// `redis-cli` on this server; its output.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies an order the way mock-srv does, but published where nobody listens: the
    /// processes do not hear of it, as if their subscription had dropped the message.
    fn order_unheard(&self, id: &str, amount: i64) {
        let k = Keys::new("ms:", "electronics");
        let request = format!("{}unheard-{id}-{amount}", k.request);
        let max = ((1u64 << 53) - 1).to_string();
        let out = self.cli(&[
            "EVAL",
            scripts::ORDER,
            "5",
            &k.totals,
            &k.meta,
            &k.log,
            &request,
            &k.products,
            id,
            &amount.to_string(),
            &max,
            "ms:nowhere",
            scripts::LOG_LENGTH,
            scripts::REQUEST_TTL_SECS,
        ]);
        assert!(!out.contains("ERR"), "{out}");
    }
}

/// Redis lost its script cache (a restart, `SCRIPT FLUSH`): the next change loads the
/// scripts again and is applied, once.
#[test]
fn a_flushed_script_cache_is_loaded_again() {
    let redis = RedisServer::start(false);
    let procs = processes(&redis, 1);
    let addr = procs[0].1;
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    assert!(redis.cli(&["SCRIPT", "FLUSH"]).contains("OK"));
    order(addr, "A1", 4);
    assert_eq!(next_total(&mut ws), ("A1".into(), 7));
    assert_eq!(get(addr, "/orders/A1").body, r#"{"id":"A1","total":7}"#);
    stop(procs);
}

/// A message the subscription never delivered: the next one shows the gap, and the log
/// fills it, in order.
#[test]
fn a_gap_in_the_messages_is_filled_from_the_log() {
    let redis = RedisServer::start(false);
    let procs = processes(&redis, 1);
    let addr = procs[0].1;
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    redis.order_unheard("A2", 5);
    order(addr, "A1", 1);
    let mut got = vec![next_total(&mut ws), next_total(&mut ws)];
    got.sort();
    assert_eq!(got, totals(&[("A1", 4), ("A2", 12)]));
    stop(procs);
}

/// A subscription that stops delivering without closing: the periodic check of the
/// sequence sees Redis ahead, twice, and takes a snapshot.
#[test]
fn a_silent_subscription_is_caught_by_the_sequence_check() {
    let redis = RedisServer::start(false);
    let url = redis.url();
    let (child, addr) = spawn(&["--redis", &url, "--redis-check-ms", "100"]);
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    redis.order_unheard("A1", 10);
    assert_eq!(next_total(&mut ws), ("A1".into(), 13));
    assert_eq!(terminate(child), 0);
}

/// Posters on two processes while Redis (with AOF) is killed and started again: every
/// order answered 200 is in the final total, once, and the subscribers end there.
#[test]
fn posting_through_a_redis_crash_counts_every_200_once() {
    let mut redis = RedisServer::start(true);
    let (poster, poster_addr, poster_log) = spawn_logged(&redis);
    let procs = vec![(poster, poster_addr), spawn(&["--redis", &redis.url()])];
    let mut ws = ws_connect(procs[1].1, "/orders/electronics");
    initial_totals(&mut ws, 2);
    let (progress, posted) = channel();
    let posters: Vec<_> = procs
        .iter()
        .map(|(_, addr)| {
            let (addr, progress) = (*addr, progress.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let post = order_request(1, "");
                let (mut ok, mut refused) = (0u64, 0u64);
                for i in 0..600 {
                    match c.request(&post).status {
                        200 => ok += 1,
                        503 => refused += 1,
                        other => panic!("{other}"),
                    }
                    if i == 100 {
                        let _ = progress.send(());
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    // Both posters are under way: Redis dies, and comes back with what it had on disk.
    posted.recv_timeout(TIMEOUT).unwrap();
    posted.recv_timeout(TIMEOUT).unwrap();
    redis.kill();
    wait_for_log(&poster_log, "Redis command link down");
    let redis = redis.restart(true);
    let (mut ok, mut refused) = (0, 0);
    for t in posters {
        let (o, r) = t.join().unwrap();
        ok += o;
        refused += r;
    }
    let expected = 3 + ok;
    let mut last = 3;
    while last != expected {
        let (id, total) = next_total(&mut ws);
        if id == "A1" {
            assert!(
                total <= expected,
                "{total} counts more than the {ok} orders answered 200"
            );
            last = total;
        }
    }
    let stored = redis.cli(&["HGET", "ms:{electronics}:totals", "A1"]);
    assert_eq!(
        stored.trim(),
        expected.to_string(),
        "{ok} ok, {refused} refused"
    );
    drop(redis);
    stop(procs);
}

/// Redis emptied under running processes (`FLUSHALL`): the first change finds no state and
/// is refused (503), the category is seeded again, subscribers get the data's totals, and
/// changes are taken again.
#[test]
fn redis_emptied_while_running_is_seeded_again() {
    let redis = RedisServer::start(false);
    let procs = processes(&redis, 1);
    let addr = procs[0].1;
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    order(addr, "A1", 10);
    assert_eq!(next_total(&mut ws), ("A1".into(), 13));
    assert!(redis.cli(&["FLUSHALL"]).contains("OK"));
    let r = post_json(addr, "/orders/A1", r#"{"amount":1}"#);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("seeded again"), "{}", r.body);
    assert_eq!(initial_totals(&mut ws, 2), totals(&[("A1", 3), ("A2", 7)]));
    order(addr, "A1", 1);
    assert_eq!(next_total(&mut ws), ("A1".into(), 4));
    stop(procs);
}

/// The script's refusals keep their statuses: a full category is 409, and a total near
/// 2^53 - 1 stays exact through Lua.
#[test]
fn refusals_and_large_totals_come_through_the_script_exactly() {
    let products: Vec<String> = (1..=1000)
        .map(|n| {
            let total = if n == 1 { (1u64 << 53) - 10 } else { 0 };
            format!(r#"{{"id":"K{n}","name":"Book {n}","rrp":"1.00","info":"i","total":{total}}}"#)
        })
        .collect();
    let data = std::env::temp_dir().join(format!("mock-srv-redis-full-{}.json", free_port()));
    std::fs::write(
        &data,
        format!(
            r#"{{"categories":[{{"name":"books","prefix":"K","products":[{}]}}]}}"#,
            products.join(",")
        ),
    )
    .unwrap();
    let redis = RedisServer::start(false);
    let (child, addr) = spawn(&["--redis", &redis.url(), "--data", data.to_str().unwrap()]);
    let r = post_json(
        addr,
        "/books",
        r#"{"name":"One more","rrp":"1.00","info":"i"}"#,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    order(addr, "K1", 9);
    assert_eq!(
        get(addr, "/orders/K1").body,
        format!(r#"{{"id":"K1","total":{}}}"#, (1u64 << 53) - 1)
    );
    assert_eq!(
        redis.cli(&["HGET", "ms:{books}:totals", "K1"]).trim(),
        ((1u64 << 53) - 1).to_string()
    );
    let r = post_json(addr, "/orders/K1", r#"{"amount":1}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(terminate(child), 0);
    let _ = std::fs::remove_file(data);
}

/// A process's CPU time so far, in clock ticks (utime + stime from /proc/PID/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// While Redis is gone the loop waits for its reconnect timer: it does not spin.
#[test]
fn redis_down_does_not_spin_the_loop() {
    let mut redis = RedisServer::start(false);
    let (child, addr, log) = spawn_logged(&redis);
    redis.kill();
    assert_eq!(post_json(addr, "/orders/A1", r#"{"amount":1}"#).status, 503);
    wait_for_log(&log, "Redis command link down");
    let before = cpu_ticks(child.id());
    // A second of nothing to do (no log line is expected; the read times out).
    let said = log.recv_timeout(std::time::Duration::from_secs(1));
    let used = cpu_ticks(child.id()) - before;
    let per_second = rustix_ticks_per_second();
    assert!(
        used * 4 < per_second,
        "{used} of {per_second} ticks in a second; said {said:?}"
    );
    assert_eq!(get(addr, "/healthz").status, 503);
    assert_eq!(terminate(child), 0);
}

fn rustix_ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Redis emptied, and seeded again by one process: another process that never saw it
/// empty notices the new epoch at its next check and takes every total again.
#[test]
fn a_new_epoch_reaches_a_process_that_never_saw_redis_empty() {
    let redis = RedisServer::start(false);
    let url = redis.url();
    let (first, a) = spawn(&["--redis", &url]);
    let (second, b) = spawn(&["--redis", &url, "--redis-check-ms", "100"]);
    let mut ws = ws_connect(b, "/orders/electronics");
    initial_totals(&mut ws, 2);
    order(a, "A1", 100);
    assert_eq!(next_total(&mut ws), ("A1".into(), 103));
    assert!(redis.cli(&["FLUSHALL"]).contains("OK"));
    // The first process finds the state gone and seeds it again.
    assert_eq!(post_json(a, "/orders/A1", r#"{"amount":1}"#).status, 503);
    assert_eq!(initial_totals(&mut ws, 2), totals(&[("A1", 3), ("A2", 7)]));
    order(a, "A2", 1);
    assert_eq!(next_total(&mut ws), ("A2".into(), 8));
    assert_eq!(get(b, "/orders/A2").body, r#"{"id":"A2","total":8}"#);
    assert_eq!(terminate(first), 0);
    assert_eq!(terminate(second), 0);
}

/// Part of one category gone: its meta deleted, the category starts a new epoch keeping
/// the totals that survive; its totals deleted, they come back from the data. The other
/// category is untouched either way.
#[test]
fn a_category_missing_from_redis_is_seeded_again() {
    let redis = RedisServer::start(false);
    let (child, addr) = spawn(&["--redis", &redis.url(), "--redis-check-ms", "100"]);
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    order(addr, "A1", 10);
    order(addr, "B1", 1);
    assert_eq!(next_total(&mut ws), ("A1".into(), 13));
    redis.cli(&["DEL", "ms:{electronics}:meta"]);
    assert_eq!(initial_totals(&mut ws, 2), totals(&[("A1", 13), ("A2", 7)]));
    order(addr, "A1", 1);
    assert_eq!(next_total(&mut ws), ("A1".into(), 14));
    redis.cli(&["DEL", "ms:{electronics}:totals"]);
    let r = post_json(addr, "/orders/A1", r#"{"amount":1}"#);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(initial_totals(&mut ws, 2), totals(&[("A1", 3), ("A2", 7)]));
    order(addr, "A1", 1);
    assert_eq!(next_total(&mut ws), ("A1".into(), 4));
    assert_eq!(get(addr, "/orders/B1").body, r#"{"id":"B1","total":102}"#);
    assert_eq!(terminate(child), 0);
}

/// Redis frozen (SIGSTOP): a change it never answers gets 504 (it may have been applied:
/// no Retry-After), the link is dropped and /healthz says so; once Redis runs again the
/// subscribers converge to what it holds.
#[test]
fn a_frozen_redis_is_given_up_on_and_rejoined() {
    let redis = RedisServer::start(false);
    let (child, addr, log) = spawn_logged(&redis);
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    let pid = redis.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Named by the client: sent again under the same name, it counts once however the
    // first attempt ended.
    let named = |amount: i64| {
        Client::connect(addr).request(&order_request(amount, "Idempotency-Key: order-7\r\n"))
    };
    let r = named(1);
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.header("retry-after"), None);
    assert!(
        r.body.contains("may or may not have been applied"),
        "{}",
        r.body
    );
    wait_for_log(&log, "Redis command link down: no answer for 5 s");
    assert_eq!(get(addr, "/healthz").status, 503);
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for_log(&log, "Redis command link back");
    assert_eq!(named(1).status, 200);
    assert_eq!(named(1).status, 200);
    order(addr, "A1", 10);
    assert_eq!(
        redis.cli(&["HGET", "ms:{electronics}:totals", "A1"]).trim(),
        "14",
        "the named order once, and the other"
    );
    loop {
        let (id, total) = next_total(&mut ws);
        if id == "A1" && total == 14 {
            break;
        }
    }
    assert_eq!(terminate(child), 0);
}

/// The script cache flushed and the subscription cut at once: the snapshots that follow
/// are refused (NOSCRIPT) until the scripts are loaded again, without a storm of retries.
#[test]
fn snapshots_refused_for_lost_scripts_are_asked_again_after_a_reload() {
    let redis = RedisServer::start(false);
    let (child, addr, log) = spawn_logged(&redis);
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    assert!(redis.cli(&["SCRIPT", "FLUSH"]).contains("OK"));
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    wait_for_log(&log, "Redis subscription link back");
    order(addr, "A1", 5);
    assert_eq!(next_total(&mut ws), ("A1".into(), 8));
    let calls = redis.cli(&["INFO", "commandstats"]);
    let evalsha = calls
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(evalsha < 50, "{evalsha} EVALSHA calls");
    assert_eq!(terminate(child), 0);
}
