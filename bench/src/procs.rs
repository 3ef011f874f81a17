//! The servers under test as child processes, and what the kernel says about them and
//! about the load: CPU time, resident memory, CPU affinity, descriptor limits.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;
use std::time::Instant;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Resource, Rlimit};
use rustix::thread::CpuSet;

/// How long a server may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What a part of the bench measures with: the server, the CPUs, how many rounds and how
/// long each figure is measured.
pub struct Run<'a> {
    pub mock_srv: &'a Path,
    pub cpus: Cpus,
    pub rounds: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// A short run that proves the part works; targets are not judged.
    pub quick: bool,
}

/// The CPUs the server and the load run on, one each when there are two or more.
#[derive(Clone, Copy)]
pub struct Cpus {
    pub server: Option<usize>,
    pub load: Option<usize>,
}

impl Cpus {
    pub fn pick() -> Cpus {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        if n >= 2 {
            Cpus {
                server: Some(0),
                load: Some(1),
            }
        } else {
            Cpus {
                server: None,
                load: None,
            }
        }
    }

    pub fn describe(&self) -> String {
        match (self.server, self.load) {
            (Some(s), Some(l)) => format!("server pinned to cpu {s}, load to cpu {l}"),
            _ => "one cpu: server and load share it".into(),
        }
    }
}

fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = CpuSet::new();
        set.set(cpu);
        let _ = rustix::thread::sched_setaffinity(None, &set);
    }
}

pub fn pin_load(cpus: Cpus) {
    pin(cpus.load);
}

/// Runs `cmd` to its end on `cpu` (the load goes back to its own afterwards).
pub fn output_on(cmd: &mut Command, cpu: Option<usize>, cpus: Cpus) -> io::Result<Output> {
    pin(cpu);
    let out = cmd.output();
    pin(cpus.load);
    out
}

/// Starts `cmd` on `cpu`.
pub fn spawn_on(cmd: &mut Command, cpu: Option<usize>, cpus: Cpus) -> io::Result<Child> {
    pin(cpu);
    let child = cmd.spawn();
    pin(cpus.load);
    child
}

/// Raises this process's descriptor limits (and so its children's) towards `want`; returns
/// the soft limit in force afterwards.
pub fn raise_fd_limit(want: u64) -> u64 {
    let now = rustix::process::getrlimit(Resource::Nofile);
    let hard = now.maximum.unwrap_or(u64::MAX);
    // Raising the hard limit needs privilege; without it, go as far as the hard limit.
    let raised = Rlimit {
        current: Some(want),
        maximum: Some(want.max(hard)),
    };
    if rustix::process::setrlimit(Resource::Nofile, raised).is_err() {
        let _ = rustix::process::setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want.min(hard)),
                maximum: now.maximum,
            },
        );
    }
    rustix::process::getrlimit(Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// A server under test. Killed when dropped.
pub struct ServerProc {
    child: Child,
    /// The server's stdout, read to its end once the server has said where it listens.
    stdout: Option<BufReader<ChildStdout>>,
    pub addr: SocketAddr,
}

impl ServerProc {
    /// Starts `program args...` on the server's cpu and waits for the `... listening on
    /// http://ADDR` line on its stdout. Its log (stderr) goes to /dev/null, still written.
    pub fn start(program: &Path, args: &[&str], cpus: Cpus) -> io::Result<ServerProc> {
        ServerProc::start_logged(program, args, cpus, None)
    }

    /// As [`ServerProc::start`], with the server's log written to `log` when given.
    pub fn start_logged(
        program: &Path,
        args: &[&str],
        cpus: Cpus,
        log: Option<&Path>,
    ) -> io::Result<ServerProc> {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        };
        pin(cpus.server);
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            // Logging at its default level: one line per request, written once per turn.
            .env_remove("RUST_LOG")
            .spawn();
        pin(cpus.load);
        let mut child =
            child.map_err(|e| io::Error::other(format!("{}: {e}", program.display())))?;
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        stdout.read_line(&mut line)?;
        let addr = line
            .trim()
            .rsplit_once("http://")
            .and_then(|(_, addr)| addr.parse().ok())
            .ok_or_else(|| io::Error::other(format!("{}: said {line:?}", program.display())))?;
        Ok(ServerProc {
            child,
            stdout: Some(stdout),
            addr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> io::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| io::Error::other("no VmRSS"))
    }
}

impl Drop for ServerProc {
    /// SIGTERM, so that a server run under a profiler writes its profile; SIGKILL if it
    /// has not exited (its stdout closed) within `STOP_GRACE`.
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if let Some(stdout) = &self.stdout {
            let mut fds = [PollFd::new(stdout.get_ref(), PollFlags::IN)];
            let timeout = Timespec::try_from(STOP_GRACE).ok();
            // Readable at EOF: the server has exited (or at least closed its stdout).
            let _ = rustix::event::poll(&mut fds, timeout.as_ref());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// CPU use of the server and of this process over an interval.
pub struct CpuMeter {
    server_pid: String,
    started: Instant,
    server: u64,
    load: u64,
}

/// Shares of one CPU, in percent, over an interval.
#[derive(Clone, Copy, Default)]
pub struct CpuShare {
    pub server: f64,
    pub load: f64,
}

impl CpuMeter {
    pub fn start(server: &ServerProc) -> CpuMeter {
        let server_pid = server.pid().to_string();
        CpuMeter {
            server: cpu_ticks(&server_pid),
            load: cpu_ticks("self"),
            server_pid,
            started: Instant::now(),
        }
    }

    pub fn stop(&self) -> CpuShare {
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let share = |t: u64| 100.0 * t as f64 / ticks / seconds;
        CpuShare {
            server: share(cpu_ticks(&self.server_pid).saturating_sub(self.server)),
            load: share(cpu_ticks("self").saturating_sub(self.load)),
        }
    }
}
