//! `--journal` from the outside: the built binary restarted, killed, started on damaged
//! files, and run out of disk space (a file size limit, RLIMIT_FSIZE, set by `prlimit`).
//! The SIGKILL loop under load is `tests/crash.rs` (`make crash`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::helpers::*;
use crate::ops::{
    BIN, dies_with_test, first_line, listening_addr, mock_srv, run, spawn, start, terminate,
};

/// A fresh folder for one test, and the journal path in it.
fn journal_in(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mock-srv-it-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("orders.journal")
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn orders_and_products_survive_a_restart_and_a_kill() {
    let journal = journal_in("restart");
    let (child, addr) = spawn(&["--journal", arg(&journal)]);
    order(addr, "A1", 10);
    let added = post_json(
        addr,
        "/electronics",
        r#"{"name":"Fan","rrp":"12.50","info":"Cool."}"#,
    );
    assert_eq!(added.status, 201);
    order(addr, "A3", 4);
    assert_eq!(terminate(child), 0);

    let (mut child, addr) = spawn(&["--journal", arg(&journal)]);
    assert_eq!(current_total(addr, "electronics", "A1"), 13);
    assert_eq!(current_total(addr, "electronics", "A3"), 4);
    assert_eq!(get(addr, "/electronics").json()[2]["name"], "Fan");
    order(addr, "B1", -1);
    // SIGKILL: no shutdown at all. The 200 meant the order was on disk.
    child.kill().unwrap();
    child.wait().unwrap();

    let (child, addr) = spawn(&["--journal", arg(&journal)]);
    assert_eq!(current_total(addr, "confectionery", "B1"), 100);
    assert_eq!(current_total(addr, "electronics", "A1"), 13);
    assert_eq!(terminate(child), 0);
}

#[test]
fn a_torn_tail_is_cut_off_with_one_log_line() {
    let journal = journal_in("torn");
    let (child, addr) = spawn(&["--journal", arg(&journal)]);
    order(addr, "A2", 5);
    assert_eq!(terminate(child), 0);
    // Half of a record, as a write cut short by a crash leaves it.
    let mut bytes = std::fs::read(&journal).unwrap();
    let good = bytes.len();
    bytes.extend_from_within(..good / 2);
    std::fs::write(&journal, &bytes).unwrap();

    let log = journal.with_extension("log");
    let mut child = mock_srv()
        .args(["--port", "0", "--journal", arg(&journal)])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let addr = listening_addr(&first_line(&mut child));
    assert_eq!(current_total(addr, "electronics", "A2"), 12);
    assert_eq!(terminate(child), 0);
    assert_eq!(std::fs::metadata(&journal).unwrap().len() as usize, good);
    let text = std::fs::read_to_string(&log).unwrap();
    let said: Vec<&str> = text.lines().filter(|l| l.contains("torn tail")).collect();
    assert_eq!(said.len(), 1, "{text}");
    assert!(said[0].contains(&format!("{} bytes", good / 2)), "{text}");
}

#[test]
fn a_damaged_journal_refuses_to_start_and_says_where() {
    let journal = journal_in("damaged");
    let (child, addr) = spawn(&["--journal", arg(&journal)]);
    order(addr, "A1", 1);
    let first = std::fs::metadata(&journal).unwrap().len() as usize;
    order(addr, "A1", 1);
    order(addr, "A1", 1);
    assert_eq!(terminate(child), 0);
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[first + 10] ^= 0xff;
    std::fs::write(&journal, &bytes).unwrap();

    let (code, _, err) = run(&["--port", "0", "--journal", arg(&journal)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(arg(&journal)), "{err}");
    assert!(err.contains(&format!("offset {first}")), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn a_journal_written_for_other_data_refuses_to_start() {
    let journal = journal_in("other-data");
    let (child, addr) = spawn(&["--journal", arg(&journal)]);
    order(addr, "A2", 1);
    assert_eq!(terminate(child), 0);
    let data = journal.with_file_name("toys.json");
    std::fs::write(
        &data,
        r#"{"categories":[{"name":"toys","prefix":"T","products":[{"id":"T1","name":"Kite","rrp":"5.00","info":"Flies."}]}]}"#,
    )
    .unwrap();
    let (code, _, err) = run(&[
        "--port",
        "0",
        "--data",
        arg(&data),
        "--journal",
        arg(&journal),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("does not fit the data") && err.contains("A2"),
        "{err}"
    );
}

/// A file size limit makes the journal's writes fail with EFBIG, as a full disk fails them
/// with ENOSPC: the turn that cannot be written is answered 503 with a JSON body and
/// `Retry-After`, its orders are not counted, and the next turn starts a fresh snapshot and
/// journal (both small) and is answered 200 again.
#[test]
fn a_full_disk_is_answered_503_and_nothing_unwritten_counts() {
    let journal = journal_in("full");
    let mut cmd = Command::new("prlimit");
    dies_with_test(&mut cmd);
    cmd.args(["--fsize=4096", "--", BIN, "--port", "0", "--journal"])
        .arg(&journal)
        .env("RUST_LOG", "off");
    let (child, line) = start(cmd);
    let addr = listening_addr(&line);
    let mut c = Client::connect(addr);
    let (mut acked, mut refused, mut acked_after_refusal) = (0u64, 0, 0);
    for i in 0..400u64 {
        let amount = 1 + i % 5;
        let r = c.request(&order_request(amount as i64, ""));
        match r.status {
            200 if refused > 0 => {
                acked += amount;
                acked_after_refusal += 1;
            }
            200 => acked += amount,
            503 => {
                if refused == 0 {
                    // Until a write succeeds again, the health check says why.
                    let health = get(addr, "/healthz");
                    assert_eq!(health.status, 503, "{}", health.body);
                    assert!(
                        health.json()["message"]
                            .as_str()
                            .unwrap()
                            .contains("journal")
                    );
                }
                refused += 1;
                assert_eq!(r.json()["statusCode"], 503);
                assert!(
                    r.json()["message"].as_str().unwrap().contains("disk"),
                    "{}",
                    r.body
                );
                assert_eq!(r.header("retry-after"), Some("1"));
            }
            other => panic!("{other}: {}", r.body),
        }
    }
    assert!(refused >= 1, "the limit was never reached");
    assert!(acked_after_refusal > 0, "never recovered");
    assert_eq!(get(addr, "/healthz").status, 200, "recovered");
    assert_eq!(current_total(addr, "electronics", "A1"), 3 + acked);
    assert_eq!(terminate(child), 0);
    // Without the limit, the restarted server has exactly the acknowledged orders.
    let (child, addr) = spawn(&["--journal", arg(&journal)]);
    assert_eq!(current_total(addr, "electronics", "A1"), 3 + acked);
    assert_eq!(terminate(child), 0);
}
