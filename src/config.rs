//! `Config`: every setting and limit of the server, with the defaults DESIGN.md gives, and
//! the command-line parser that fills it in.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;

/// Everything the server needs to know before it starts. Every limit is a field so that
/// tests can shrink it and users can change it with a flag.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind (`--host`).
    pub host: String,
    /// Share the port with other processes (SO_REUSEPORT, `--reuse-port`).
    pub reuse_port: bool,
    /// Port to bind; 0 picks a free one (`--port`, `PORT`).
    pub port: u16,
    /// Serve the web app from this folder instead of the built-in copy (`--static`).
    pub static_dir: Option<PathBuf>,
    /// Load categories, products and totals from this JSON file (`--data`).
    pub data_file: Option<PathBuf>,
    /// Add 1 to 7 orders to a random product every this often (`--simulate[=MS]`).
    pub simulate: Option<Duration>,
    /// Origins allowed besides the loopback ones (`--allow-origin`, repeatable).
    pub allow_origins: Vec<String>,
    /// Largest request head (request line and headers); 431 past it.
    pub max_head_bytes: usize,
    /// Largest request body; 413 past it.
    pub max_body_bytes: usize,
    /// Time to receive a whole request head, and then its body; 408 past it.
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection is kept open.
    pub idle_timeout: Duration,
    /// Largest WebSocket message a client may send; close 1009 past it.
    pub max_ws_message_bytes: usize,
    /// How often an idle WebSocket is pinged; one silent for a whole interval is closed.
    pub ws_ping_interval: Duration,
    /// Bytes queued for one WebSocket before it is switched to conflation.
    pub ws_queue_bytes: usize,
    /// Most connections open at once; new ones get 503. `None`: the fd limit decides.
    pub max_connections: Option<usize>,
    /// Serve a WebSocket echo endpoint at `/echo`, for conformance tests (`--echo`).
    pub echo: bool,
    /// How long shutdown waits for WebSockets to finish closing.
    pub shutdown_grace: Duration,
    /// Keep the state in Redis at this URL (`--redis`, `REDIS_URL`).
    pub redis: Option<String>,
    /// The prefix of every Redis key (`--redis-prefix`).
    pub redis_prefix: String,
    /// How often each category's sequence is compared with Redis's (`--redis-check-ms`).
    pub redis_check_interval: Duration,
    /// Keep every change in this append-only file (`--journal`, `MOCK_SRV_JOURNAL`).
    pub journal: Option<PathBuf>,
    /// Compact the journal into a snapshot once it passes this size.
    pub journal_compact_bytes: u64,
    /// This share (0 to 100) of API requests is answered 503 on purpose (`--fail-rate`).
    pub fail_rate_percent: u8,
    /// Every API request waits a random time in this range before it is handled
    /// (`--latency MS` or `MIN-MAX`).
    pub latency: Option<(Duration, Duration)>,
    /// Each WebSocket and event stream is ended at a random moment, with this mean lifetime
    /// (`--ws-drop-ms`).
    pub ws_drop_mean: Option<Duration>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            host: "127.0.0.1".into(),
            reuse_port: false,
            port: 3000,
            static_dir: None,
            data_file: None,
            simulate: None,
            allow_origins: Vec::new(),
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_ws_message_bytes: 64 * 1024,
            ws_queue_bytes: 256 * 1024,
            ws_ping_interval: Duration::from_secs(30),
            max_connections: None,
            shutdown_grace: Duration::from_millis(1500),
            echo: false,
            redis: None,
            redis_prefix: "ms:".into(),
            redis_check_interval: Duration::from_secs(5),
            journal: None,
            journal_compact_bytes: crate::state::journal::DEFAULT_COMPACT_BYTES,
            fail_rate_percent: 0,
            latency: None,
            ws_drop_mean: None,
        }
    }
}

/// The smallest per-WebSocket queue: it must hold at least one update frame.
pub const MIN_WS_QUEUE_BYTES: usize = 1024;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

/// The text `--help` prints.
pub const HELP: &str = "\
mock-srv: a real-time orders service (products, orders, live totals over WebSocket or
server-sent events)

Usage: mock-srv [OPTIONS]

Options:
  --host ADDR               address to listen on [default: 127.0.0.1]
  --port PORT               port to listen on; 0 picks a free one [default: 3000, or $PORT]
  --reuse-port              share the port with other mock-srv processes (SO_REUSEPORT):
                            the kernel spreads new connections between them
  --static DIR              serve the web app from DIR instead of the built-in copy
  --data FILE               load categories, products and totals from a JSON file
                            (same shape as data/products.json)
  --simulate[=MS]           every MS milliseconds a random product gains 1 to 7 orders
                            [default MS: 1500]
  --journal FILE            keep every change in FILE (and FILE.snapshot): totals and
                            products survive a restart or a crash, and a 200 means the
                            change is on disk [default: in memory only]
  --journal-compact-bytes N compact the journal into FILE.snapshot past N bytes
                            [default: 67108864]
  --redis URL               keep the state in Redis (redis://HOST[:PORT][/DB]), shared by
                            every mock-srv process started with the same URL and prefix
                            [default: in this process; or $REDIS_URL]
  --redis-prefix PREFIX     the prefix of every Redis key [default: ms:]
  --redis-check-ms N        compare each category's sequence with Redis's this often, to
                            catch a subscription that stopped delivering [default: 5000]
  --allow-origin ORIGIN     also accept requests from pages at ORIGIN
                            (e.g. http://my-app.test:8080); repeatable
  --echo                    serve a WebSocket echo endpoint at /echo (for protocol
                            conformance tests such as Autobahn)
  -h, --help                print this help
  -V, --version             print the version

Misbehaving on purpose, to rehearse a frontend's error and reconnect handling (all off by
default):
  --fail-rate PERCENT       answer that share of API requests with 503 on purpose (state
                            unchanged; marked with X-Mock-Srv-Injected) [default: 0]
  --latency MS|MIN-MAX      hold every API request MS milliseconds (or a random time from
                            MIN to MAX) before handling it, so spinners show
  --ws-drop-ms MS           end each WebSocket (close 1012) and event stream at a random
                            moment, MS milliseconds after it opened on average

Limits:
  --max-head-bytes N        largest request head [default: 16384]
  --max-body-bytes N        largest request body [default: 65536]
  --request-timeout-ms N    time to receive a request head, then its body [default: 10000]
  --idle-timeout-ms N       close idle keep-alive connections after N ms [default: 60000]
  --max-ws-message-bytes N  largest WebSocket message from a client [default: 65536]
  --ws-ping-ms N            ping WebSockets (and send event streams a keep-alive) this
                            often; close one silent (or not reading) for that long
                            [default: 30000]
  --ws-queue-bytes N        bytes queued per WebSocket or event stream before only the
                            latest total of each product is kept [default: 262144]
  --max-connections N       most connections at once [default: what the fd limit allows]

Environment:
  PORT              port to listen on, when --port is not given
  MOCK_SRV_JOURNAL  the journal file, when --journal is not given
  REDIS_URL         the Redis URL, when --redis is not given
  RUST_LOG          log level: error, warn, info (default), debug or trace
";

impl Command {
    /// Parses the arguments (without the program name). `env` reads an environment variable
    /// (`PORT`, `MOCK_SRV_JOURNAL`).
    pub fn parse(
        args: impl IntoIterator<Item = OsString>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Command, Error> {
        use lexopt::prelude::*;

        let mut config = Config::default();
        let mut port = None;
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::Help),
                Short('V') | Long("version") => return Ok(Command::Version),
                Long("host") => config.host = parser.value()?.string()?,
                Long("port") => {
                    let n: u64 = number(&mut parser, "--port")?;
                    let p = u16::try_from(n).map_err(|_| {
                        Error::Usage(format!("--port {n} is above 65535, the largest port"))
                    })?;
                    port = Some(p);
                }
                Long("reuse-port") => config.reuse_port = true,
                Long("static") => config.static_dir = Some(parser.value()?.into()),
                Long("data") => config.data_file = Some(parser.value()?.into()),
                Long("journal") => config.journal = Some(parser.value()?.into()),
                Long("redis") => config.redis = Some(parser.value()?.string()?),
                Long("redis-prefix") => config.redis_prefix = parser.value()?.string()?,
                Long("redis-check-ms") => {
                    config.redis_check_interval = millis(&mut parser, "--redis-check-ms")?
                }
                Long("journal-compact-bytes") => {
                    config.journal_compact_bytes =
                        positive(&mut parser, "--journal-compact-bytes")? as u64
                }
                Long("simulate") => {
                    let ms = match parser.optional_value() {
                        Some(v) => {
                            let v = v.to_string_lossy().into_owned();
                            v.parse::<u64>().map_err(|_| {
                                Error::Usage(format!(
                                    "--simulate={v:?} is not a number of milliseconds"
                                ))
                            })?
                        }
                        None => 1500,
                    };
                    if ms == 0 {
                        return Err(Error::Usage("--simulate needs a period above 0 ms".into()));
                    }
                    config.simulate = Some(Duration::from_millis(ms));
                }
                Long("allow-origin") => {
                    let origin = parser.value()?.string()?;
                    let origin = origin.trim_end_matches('/');
                    if !is_origin(origin) {
                        return Err(Error::Usage(format!(
                            "--allow-origin {origin:?} is not an origin (like http://my-app.test:8080, or *)"
                        )));
                    }
                    config.allow_origins.push(origin.to_string());
                }
                Long("max-head-bytes") => {
                    config.max_head_bytes = positive(&mut parser, "--max-head-bytes")?
                }
                Long("max-body-bytes") => {
                    config.max_body_bytes = positive(&mut parser, "--max-body-bytes")?
                }
                Long("request-timeout-ms") => {
                    config.request_timeout = millis(&mut parser, "--request-timeout-ms")?
                }
                Long("idle-timeout-ms") => {
                    config.idle_timeout = millis(&mut parser, "--idle-timeout-ms")?
                }
                Long("max-ws-message-bytes") => {
                    config.max_ws_message_bytes = positive(&mut parser, "--max-ws-message-bytes")?
                }
                Long("ws-queue-bytes") => {
                    config.ws_queue_bytes = positive(&mut parser, "--ws-queue-bytes")?;
                    if config.ws_queue_bytes < MIN_WS_QUEUE_BYTES {
                        return Err(Error::Usage(format!(
                            "--ws-queue-bytes must be at least {MIN_WS_QUEUE_BYTES} (room for the largest update)"
                        )));
                    }
                }
                Long("echo") => config.echo = true,
                Long("fail-rate") => {
                    let percent: u64 = number(&mut parser, "--fail-rate")?;
                    config.fail_rate_percent = u8::try_from(percent)
                        .ok()
                        .filter(|p| *p <= 100)
                        .ok_or_else(|| {
                            Error::Usage(format!("--fail-rate {percent} is not 0 to 100"))
                        })?;
                }
                Long("latency") => {
                    let value = parser.value()?.string()?;
                    config.latency = Some(latency_range(&value)?);
                }
                Long("ws-drop-ms") => {
                    config.ws_drop_mean = Some(millis(&mut parser, "--ws-drop-ms")?)
                }
                Long("ws-ping-ms") => {
                    config.ws_ping_interval = millis(&mut parser, "--ws-ping-ms")?
                }
                Long("max-connections") => {
                    config.max_connections = Some(positive(&mut parser, "--max-connections")?)
                }
                _ => return Err(arg.unexpected().into()),
            }
        }
        if config.redis.is_none() {
            config.redis = env("REDIS_URL").filter(|v| !v.is_empty());
        }
        if config.journal.is_none() {
            config.journal = env("MOCK_SRV_JOURNAL")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from);
        }
        config.port = match (port, env("PORT")) {
            (Some(p), _) => p,
            (None, Some(env)) => env
                .trim()
                .parse()
                .map_err(|_| Error::Usage(format!("PORT={env:?} is not a port number")))?,
            (None, None) => config.port,
        };
        if config.redis.is_some() && config.journal.is_some() {
            return Err(Error::Usage(
                "--redis and --journal are two places for the state; choose one (Redis's own appendonly keeps it on disk)".into(),
            ));
        }
        Ok(Command::Run(Box::new(config)))
    }
}

/// Reads `flag`'s value as a whole number; the error names the flag and the value.
fn number<T: std::str::FromStr>(parser: &mut lexopt::Parser, flag: &str) -> Result<T, Error> {
    let value = parser.value()?.to_string_lossy().into_owned();
    value
        .parse()
        .map_err(|_| Error::Usage(format!("{flag} {value:?} is not a whole number")))
}

/// Reads `flag`'s value as a number above zero.
fn positive(parser: &mut lexopt::Parser, flag: &str) -> Result<usize, Error> {
    let n: usize = number(parser, flag)?;
    if n == 0 {
        return Err(Error::Usage(format!("{flag} must be above 0")));
    }
    Ok(n)
}

/// Reads `flag`'s value as a positive number of milliseconds.
fn millis(parser: &mut lexopt::Parser, flag: &str) -> Result<Duration, Error> {
    Ok(Duration::from_millis(positive(parser, flag)? as u64))
}

/// `--latency`: `MS`, or `MIN-MAX` (milliseconds, MIN at most MAX, MAX above 0).
fn latency_range(value: &str) -> Result<(Duration, Duration), Error> {
    let ms = |s: &str| s.trim().parse::<u64>().ok();
    let (min, max) = match value.split_once('-') {
        Some((a, b)) => (ms(a), ms(b)),
        None => (ms(value), ms(value)),
    };
    let (Some(min), Some(max)) = (min, max) else {
        return Err(Error::Usage(format!(
            "--latency {value:?} is not MS or MIN-MAX (milliseconds, like 300 or 100-800)"
        )));
    };
    if max == 0 || min > max {
        return Err(Error::Usage(format!(
            "--latency {value}: needs MIN at most MAX, and MAX above 0"
        )));
    }
    Ok((Duration::from_millis(min), Duration::from_millis(max)))
}

/// Whether `s` is an origin as browsers send it: `http://` or `https://`, a host, and an
/// optional port, nothing else (or `*`, any origin).
fn is_origin(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let Some(authority) = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
    else {
        return false;
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (authority, None),
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `args` with `PORT` set to `port` and no other environment.
    fn parse(args: &[&str], port: Option<&str>) -> Result<Command, Error> {
        let env = |name: &str| (name == "PORT").then(|| port.map(String::from)).flatten();
        Command::parse(args.iter().map(OsString::from), env)
    }

    fn config(args: &[&str], env: Option<&str>) -> Config {
        match parse(args, env) {
            Ok(Command::Run(c)) => *c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_design() {
        let c = config(&[], None);
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 3000));
        assert_eq!((c.max_head_bytes, c.max_body_bytes), (16384, 65536));
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!((c.max_ws_message_bytes, c.ws_queue_bytes), (65536, 262144));
        assert!(c.simulate.is_none());
    }

    #[test]
    fn port_flag_beats_env_and_env_beats_default() {
        assert_eq!(config(&["--port", "8080"], Some("9000")).port, 8080);
        assert_eq!(config(&["--port=0"], None).port, 0);
        assert_eq!(config(&[], Some("9000")).port, 9000);
        assert!(parse(&[], Some("nine")).is_err());
    }

    #[test]
    fn simulate_takes_an_optional_period() {
        assert_eq!(
            config(&["--simulate"], None).simulate,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            config(&["--simulate=200"], None).simulate,
            Some(Duration::from_millis(200))
        );
        assert!(parse(&["--simulate=0"], None).is_err());
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            &["--bogus"][..],
            &["--port", "70000"],
            &["--port"],
            &["--max-body-bytes=0"],
        ] {
            let err = parse(args, None).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
        // Each error names the option, and what is wrong with its value.
        for (args, said) in [
            (
                &["--port", "abc"][..],
                "--port \"abc\" is not a whole number",
            ),
            (&["--port", "70000"], "--port 70000 is above 65535"),
            (&["--max-body-bytes", "lots"], "--max-body-bytes \"lots\""),
            (&["--ws-ping-ms", "0"], "--ws-ping-ms must be above 0"),
            (&["--simulate=soon"], "--simulate=\"soon\""),
            (
                &["--allow-origin", "evil"],
                "--allow-origin \"evil\" is not an origin",
            ),
            (
                &["--allow-origin", "http://a.test/path"],
                "is not an origin",
            ),
            (&["--fail-rate", "101"], "--fail-rate 101 is not 0 to 100"),
            (
                &["--latency", "soon"],
                "--latency \"soon\" is not MS or MIN-MAX",
            ),
            (
                &["--latency", "500-100"],
                "--latency 500-100: needs MIN at most MAX",
            ),
            (&["--latency", "0"], "MAX above 0"),
            (&["--ws-drop-ms", "0"], "--ws-drop-ms must be above 0"),
        ] {
            let err = parse(args, None).unwrap_err().to_string();
            assert!(err.contains(said), "{args:?}: {err}");
        }
        for origin in [
            "http://my-app.test:8080",
            "https://a.example",
            "http://[::1]:5173",
            "*",
        ] {
            let c = config(&["--allow-origin", origin], None);
            assert_eq!(c.allow_origins, [origin]);
        }
        let ms = Duration::from_millis;
        assert_eq!(
            config(&["--latency", "300"], None).latency,
            Some((ms(300), ms(300)))
        );
        assert_eq!(
            config(&["--latency=0-800"], None).latency,
            Some((ms(0), ms(800)))
        );
        assert_eq!(
            config(&["--ws-drop-ms", "250"], None).ws_drop_mean,
            Some(ms(250))
        );
        assert!(matches!(parse(&["--help"], None), Ok(Command::Help)));
        assert!(matches!(parse(&["-V"], None), Ok(Command::Version)));
    }

    #[test]
    fn the_journal_comes_from_the_flag_or_the_environment() {
        assert_eq!(config(&[], None).journal, None);
        let flag = config(&["--journal", "a.log"], None);
        assert_eq!(flag.journal.as_deref(), Some(std::path::Path::new("a.log")));
        let env = |name: &str| (name == "MOCK_SRV_JOURNAL").then(|| "b.log".to_string());
        let Ok(Command::Run(c)) = Command::parse(std::iter::empty(), env) else {
            panic!("expected a config");
        };
        assert_eq!(c.journal.as_deref(), Some(std::path::Path::new("b.log")));
        let Ok(Command::Run(c)) = Command::parse(["--journal".into(), "a.log".into()], env) else {
            panic!("expected a config");
        };
        assert_eq!(
            c.journal.as_deref(),
            Some(std::path::Path::new("a.log")),
            "the flag wins"
        );
    }
}
