//! The binary as an operator meets it: flags, exit codes, the printed port, signals,
//! the simulator and data files.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_mock-srv");

/// The binary, as a command whose process is killed when the test that started it ends
/// (PR_SET_PDEATHSIG fires when the spawning thread exits): a failing test leaves no
/// server behind.
pub fn mock_srv() -> Command {
    let mut cmd = Command::new(BIN);
    dies_with_test(&mut cmd);
    cmd
}

/// Makes the process `cmd` starts die with the test's thread (see [`mock_srv`]); the
/// setting survives an exec (a wrapper such as `prlimit`).
pub fn dies_with_test(cmd: &mut Command) {
    // SAFETY: between fork and exec the closure makes one system call and allocates
    // nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

/// Runs the binary to completion; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = mock_srv()
        .args(args)
        .env_remove("PORT")
        .output()
        .expect("run mock-srv");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

/// Starts the binary on port 0 and reads the address from its first line of output.
pub fn spawn(args: &[&str]) -> (Child, SocketAddr) {
    let mut cmd = mock_srv();
    cmd.args(["--port", "0"]).args(args).env("RUST_LOG", "warn");
    let (child, line) = start(cmd);
    (child, listening_addr(&line))
}

/// Starts `cmd` (the binary, or a shell that execs it) and returns it with the first line
/// it prints.
pub fn start(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let line = first_line(&mut child);
    (child, line)
}

/// The first line a started server prints on its stdout (where it listens).
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .unwrap();
    line
}

/// The address in `mock-srv listening on http://ADDR`.
pub fn listening_addr(line: &str) -> SocketAddr {
    let addr = line.trim().rsplit("http://").next().unwrap();
    addr.parse()
        .unwrap_or_else(|_| panic!("no address in {line:?}"))
}

/// Sends SIGTERM and returns the exit code, failing if the process takes over 5 s.
pub fn terminate(mut child: Child) -> i32 {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait().map(|s| s.code().unwrap_or(-1))));
    rx.recv_timeout(TIMEOUT)
        .expect("mock-srv did not exit after SIGTERM")
        .unwrap()
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--host",
        "--port",
        "--static",
        "--data",
        "--simulate",
        "--allow-origin",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }
    let (code, out, _) = run(&["--version"]);
    assert_eq!(
        (code, out.trim()),
        (0, concat!("mock-srv ", env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["--bogus"][..],
        &["--port", "99999"],
        &["--simulate=abc"],
        &["--host"],
        &["--port", "abc"],
        &["--allow-origin", "evil"],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("mock-srv: "), "{err}");
    }
}

#[test]
fn a_port_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, err) = run(&["--port", &port]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&port), "{err}");
}

#[test]
fn bad_data_files_exit_2_and_good_ones_are_served() {
    let dir = std::env::temp_dir().join(format!("mock-srv-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"categories":[{"name":"toys","prefix":"T","products":[{"id":"X1","name":"a","rrp":"1","info":"i"}]}]}"#).unwrap();
    let (code, _, err) = run(&["--data", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("X1"), "{err}");
    let (code, _, _) = run(&["--data", dir.join("missing.json").to_str().unwrap()]);
    assert_eq!(code, 2);

    let good = dir.join("good.json");
    std::fs::write(&good, r#"{"categories":[{"name":"toys","prefix":"T","products":[{"id":"T1","name":"Kite","rrp":"5.00","info":"Flies.","total":42}]}]}"#).unwrap();
    let (child, addr) = spawn(&["--data", good.to_str().unwrap()]);
    assert_eq!(
        get(addr, "/toys").body,
        r#"[{"id":"T1","name":"Kite","rrp":"5.00","info":"Flies."}]"#
    );
    let mut ws = ws_connect(addr, "/orders/toys");
    assert_eq!(next_total(&mut ws), ("T1".into(), 42));
    assert_eq!(terminate(child), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn port_env_is_used_when_no_flag_is_given() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let mut cmd = mock_srv();
    cmd.env("PORT", port.to_string());
    let (child, line) = start(cmd);
    assert_eq!(
        line.trim(),
        format!("mock-srv listening on http://127.0.0.1:{port}")
    );
    assert_eq!(terminate(child), 0);
}

#[test]
fn sigterm_closes_websockets_with_1001_and_exits_0() {
    let (child, addr) = spawn(&[]);
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    order(addr, "A1", 10);
    assert_eq!(next_total(&mut ws), ("A1".into(), 13));
    assert_eq!(terminate(child), 0);
    assert_eq!(next_close_code(&mut ws), Some(CloseCode::Away));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn sigterm_ends_event_streams_after_their_totals() {
    let (child, addr) = spawn(&[]);
    let mut events = Events::open(addr, "/orders/electronics", "");
    events.next_total();
    events.next_total();
    order(addr, "A1", 10);
    assert_eq!(terminate(child), 0);
    assert_eq!(events.next_total(), ("A1".into(), 13));
    assert!(events.ends());
}

#[test]
fn the_simulator_pushes_through_the_same_fan_out() {
    let (child, addr) = spawn(&["--simulate=20"]);
    let mut el = ws_connect(addr, "/orders/electronics");
    let start = initial_totals(&mut el, 2);
    // Some simulated order lands on an electronics product and raises its total by 1..=7.
    let (id, total) = next_total(&mut el);
    let before = start.iter().find(|(i, _)| *i == id).unwrap().1;
    assert!(total > before, "{id}: {before} -> {total}");
    assert_eq!(terminate(child), 0);
}

/// SIGTERM while orders are being posted and subscribers are connected: every POST that
/// got 200 is in the totals the subscribers last received, every WebSocket is closed with
/// 1001, and the process exits 0 within two seconds.
#[test]
fn sigterm_under_load_loses_no_acknowledged_order() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};
    use std::time::{Duration, Instant};

    let (child, addr) = spawn(&[]);
    let subscribers: Vec<_> = (0..3)
        .map(|_| {
            let mut ws = ws_connect(addr, "/orders/electronics");
            initial_totals(&mut ws, 2);
            std::thread::spawn(move || {
                let mut last_a1 = 3;
                loop {
                    match ws.read() {
                        Ok(tungstenite::Message::Text(t)) => {
                            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                            if v["id"] == "A1" {
                                last_a1 = v["total"].as_u64().unwrap();
                            }
                        }
                        Ok(tungstenite::Message::Close(frame)) => {
                            return (last_a1, frame.map(|f| f.code));
                        }
                        Ok(_) => {}
                        Err(e) => panic!("subscriber lost its connection without a close: {e}"),
                    }
                }
            })
        })
        .collect();

    let acknowledged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let posting = Arc::new(AtomicBool::new(true));
    let (first_tx, first) = mpsc::channel();
    let poster = {
        let (acknowledged, posting) = (acknowledged.clone(), posting.clone());
        std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            let req = b"POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"amount\":1}";
            while posting.load(Ordering::Relaxed) {
                if c.stream.write_all(req).is_err() {
                    return;
                }
                match c.try_read_response() {
                    Some(r) if r.status == 200 => {
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                        let _ = first_tx.send(());
                        if r.header("connection") == Some("close") {
                            return;
                        }
                    }
                    // Refused or cut off by the shutdown: not acknowledged.
                    _ => return,
                }
            }
        })
    };
    first.recv_timeout(TIMEOUT).expect("no POST was answered");
    let stop_at = Instant::now();
    let code = terminate(child);
    let took = stop_at.elapsed();
    posting.store(false, Ordering::Relaxed);
    poster.join().unwrap();

    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(2), "took {took:?} to exit");
    let acked = acknowledged.load(Ordering::SeqCst);
    assert!(acked > 0);
    for s in subscribers {
        let (last_a1, close) = s.join().unwrap();
        assert_eq!(close, Some(CloseCode::Away));
        assert_eq!(last_a1, 3 + acked, "acknowledged {acked} orders");
    }
}

/// Out of file descriptors: the accept loop neither spins nor stalls. While at the limit the
/// server uses (almost) no CPU; once descriptors free up, queued clients are served.
#[test]
fn at_the_fd_limit_accept_pauses_without_spinning() {
    use std::time::Duration;
    let mut cmd = Command::new("bash");
    let script = format!("ulimit -n 64 && exec {BIN} --port 0 --max-connections 10000");
    cmd.args(["-c", &script]).env("RUST_LOG", "error");
    let (child, line) = start(cmd);
    let addr = listening_addr(&line);

    // More connections than descriptors: the first ones are accepted and held, the rest
    // wait in the kernel's backlog.
    let mut held: Vec<Client> = (0..100).map(|_| Client::connect(addr)).collect();
    let mut queued = held.pop().unwrap();
    queued
        .stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    queued.send(b"GET /electronics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let cpu_before = cpu_seconds(child.id());
    // Not served while the server has no descriptor for it: this read times out after 1 s.
    assert!(
        queued.try_read_response().is_none(),
        "served while out of descriptors?"
    );
    let cpu_at_limit = cpu_seconds(child.id()) - cpu_before;
    assert!(
        cpu_at_limit < 0.2,
        "{cpu_at_limit} s of CPU in 1 s at the fd limit"
    );
    eprintln!("fd limit: {cpu_at_limit:.3} s CPU during 1 s at the limit");

    drop(held);
    queued.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let r = queued.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(terminate(child), 0);
}

/// User plus system CPU time of a process, in seconds (from /proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The server's memory stays bounded while subscribers stop reading and orders pour in:
/// each slow subscriber costs at most its queue budget, and all of them converge.
#[test]
fn slow_subscribers_cost_bounded_memory() {
    let queue_bytes = 64 * 1024;
    let (child, addr) = spawn(&["--ws-queue-bytes", &queue_bytes.to_string()]);
    let rss_before = rss_kib(child.id());
    let mut slow: Vec<Ws> = (0..20)
        .map(|_| ws_connect(addr, "/orders/electronics"))
        .collect();
    let mut poster = Client::connect(addr);
    let post = "POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"amount\":1}".repeat(500);
    let batches = 100;
    for _ in 0..batches {
        poster.send(post.as_bytes());
        for _ in 0..500 {
            assert_eq!(poster.read_response().status, 200);
        }
    }
    let rss_after = rss_kib(child.id());
    let growth_kib = rss_after.saturating_sub(rss_before);
    eprintln!(
        "slow subscribers: server RSS {rss_before} KiB before, {rss_after} KiB after 50,000 orders to 20 subscribers that do not read"
    );
    let bound_kib = 20 * queue_bytes / 1024 + 16 * 1024;
    assert!(
        growth_kib < bound_kib as u64,
        "RSS grew {growth_kib} KiB (bound {bound_kib} KiB)"
    );
    let final_total = 3 + 500 * batches as u64;
    for ws in &mut slow {
        let mut last = 0;
        while last != final_total {
            let (id, total) = next_total(ws);
            if id == "A1" {
                last = total;
            }
        }
    }
    assert_eq!(terminate(child), 0);
}

/// Resident memory of a process, in KiB (VmRSS from /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// SIGHUP (the terminal that started it closed) shuts down like SIGTERM.
#[test]
fn sighup_shuts_down_like_sigterm() {
    let (mut child, addr) = spawn(&[]);
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(next_close_code(&mut ws), Some(CloseCode::Away));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// A request refused with 403 says why in the log, at the default level.
#[test]
fn a_refused_request_logs_why() {
    let log = std::env::temp_dir().join(format!("mock-srv-403-{}.log", std::process::id()));
    let mut cmd = mock_srv();
    cmd.args(["--port", "0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let mut child = cmd.spawn().unwrap();
    let addr = listening_addr(&first_line(&mut child));
    let foreign_origin = Client::connect(addr).request(
        b"GET /electronics HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\n\r\n",
    );
    assert_eq!(foreign_origin.status, 403);
    let foreign_host =
        Client::connect(addr).request(b"GET /electronics HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    assert_eq!(foreign_host.status, 403);
    assert_eq!(terminate(child), 0);
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let refused: Vec<&str> = text.lines().filter(|l| l.contains("refused:")).collect();
    assert_eq!(refused.len(), 2, "{text}");
    assert!(
        refused[0].contains("Origin https://evil.example is not allowed"),
        "{text}"
    );
    assert!(
        refused[1].contains("\"evil.example\" is not a loopback name"),
        "{text}"
    );
}

/// The start says where it listens once (stdout), warns about a `RUST_LOG` it does not
/// understand, and says when the simulator is on.
#[test]
fn the_start_says_where_once_and_what_is_on() {
    use std::io::Read;
    let log = std::env::temp_dir().join(format!("mock-srv-start-{}.log", std::process::id()));
    let mut child = mock_srv()
        .args(["--port", "0", "--simulate=60000"])
        .env("RUST_LOG", "verbose")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    listening_addr(&line);
    assert_eq!(terminate(child), 0);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "one line on stdout");
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(!text.contains("listening on"), "said twice: {text}");
    assert!(
        text.contains("RUST_LOG=\"verbose\" names no level"),
        "{text}"
    );
    assert!(text.contains("simulating orders: every 60000 ms"), "{text}");
}

/// The listener queues 1,024 connection attempts (what `ss` shows as a listener's Send-Q),
/// so that 2,000 clients connecting at once are not dropped at mio's default of 128.
#[test]
fn the_listener_queues_1024_connection_attempts() {
    let (child, addr) = spawn(&[]);
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", addr.port())])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let send_q: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(send_q, ["1024"], "{text}");
    assert_eq!(terminate(child), 0);
}

/// `--reuse-port`: a second process listens on the same port, and serves it alone once the
/// first is gone; without the flag the port is in use.
#[test]
fn reuse_port_lets_processes_share_a_port() {
    let (first, addr) = spawn(&["--reuse-port"]);
    let port = addr.port().to_string();
    let (code, _, err) = run(&["--port", &port]);
    assert_eq!(code, 1, "{err}");
    let mut cmd = mock_srv();
    cmd.args(["--port", &port, "--reuse-port"]);
    let (second, line) = start(cmd);
    assert_eq!(listening_addr(&line), addr);
    assert_eq!(terminate(first), 0);
    for _ in 0..20 {
        assert_eq!(get(addr, "/healthz").status, 200);
    }
    assert_eq!(terminate(second), 0);
}
