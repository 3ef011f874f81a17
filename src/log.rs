//! A small leveled logger for stderr. Lines are collected in a buffer and written with one
//! syscall per loop turn, so logging every request does not cost a write per request.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// How much to log, from `RUST_LOG` (`error`, `warn`, `info`, `debug`, `trace`, `off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// Whether `spec` names a level [`Level::parse`] knows (or is empty: the default).
    pub fn is_known(spec: &str) -> bool {
        let level = last_directive(spec);
        ["", "off", "error", "warn", "info", "debug", "trace"].contains(&level.as_str())
    }

    /// Reads a `RUST_LOG`-style value. `mock_srv=debug` and `warn,mock_srv=debug` work too:
    /// the last directive wins. Unknown text means the default, `info`.
    pub fn parse(spec: &str) -> Level {
        let level = last_directive(spec);
        match level.as_str() {
            "off" => Level::Off,
            "error" => Level::Error,
            "warn" => Level::Warn,
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            _ => Level::Info,
        }
    }

    /// The level's name, padded to five characters so messages line up.
    fn label(self) -> &'static str {
        match self {
            Level::Off => "OFF  ",
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

/// The buffered logger. Call [`Log::flush`] once per loop turn.
#[derive(Debug)]
pub struct Log {
    level: Level,
    buf: Vec<u8>,
    /// The timestamp of the last line, and the millisecond it stands for: lines logged
    /// within the same millisecond reuse it instead of formatting the date again.
    stamp: Vec<u8>,
    stamp_ms: u128,
}

impl Log {
    /// A logger at `level`.
    pub fn new(level: Level) -> Log {
        Log {
            level,
            buf: Vec::with_capacity(16 * 1024),
            stamp: Vec::with_capacity(32),
            stamp_ms: u128::MAX,
        }
    }

    /// A logger at the level `RUST_LOG` names (default `info`).
    pub fn from_env() -> Log {
        Log::new(Level::parse(&std::env::var("RUST_LOG").unwrap_or_default()))
    }

    /// Whether lines at `level` are written.
    pub fn enabled(&self, level: Level) -> bool {
        level != Level::Off && level <= self.level
    }

    /// Appends one line: `2026-11-21T17:32:00.123Z INFO message`.
    pub fn line(&mut self, level: Level, args: fmt::Arguments) {
        if !self.enabled(level) {
            return;
        }
        self.start_line(level);
        let _ = self.buf.write_fmt(args);
        self.buf.push(b'\n');
    }

    /// Appends the `info` line for one answered request:
    /// `<peer> "<METHOD> <target>" <status> <bytes>B`. Plain appends rather than
    /// `format_args!`, because it runs for every request.
    pub fn request(&mut self, peer: &str, method: &str, target: &str, status: u16, bytes: usize) {
        if !self.enabled(Level::Info) {
            return;
        }
        self.start_line(Level::Info);
        let mut digits = itoa::Buffer::new();
        for part in [
            peer,
            " \"",
            method,
            " ",
            target,
            "\" ",
            digits.format(status),
            " ",
        ] {
            self.buf.extend_from_slice(part.as_bytes());
        }
        self.buf.extend_from_slice(digits.format(bytes).as_bytes());
        self.buf.extend_from_slice(b"B\n");
    }

    /// Appends the timestamp and the level label that start every line.
    fn start_line(&mut self, level: Level) {
        let now = SystemTime::now();
        let ms = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        if ms != self.stamp_ms {
            self.stamp.clear();
            write_timestamp(&mut self.stamp, now);
            self.stamp_ms = ms;
        }
        self.buf.extend_from_slice(&self.stamp);
        self.buf.push(b' ');
        self.buf.extend_from_slice(level.label().as_bytes());
        self.buf.push(b' ');
    }

    pub fn error(&mut self, args: fmt::Arguments) {
        self.line(Level::Error, args);
    }

    pub fn warn(&mut self, args: fmt::Arguments) {
        self.line(Level::Warn, args);
    }

    pub fn info(&mut self, args: fmt::Arguments) {
        self.line(Level::Info, args);
    }

    pub fn debug(&mut self, args: fmt::Arguments) {
        self.line(Level::Debug, args);
    }

    /// Writes the buffered lines to stderr with one write.
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            let _ = std::io::stderr().lock().write_all(&self.buf);
            self.buf.clear();
            if self.buf.capacity() > 1 << 20 {
                self.buf = Vec::with_capacity(16 * 1024);
            }
        }
    }
}

/// RFC 3339 UTC with milliseconds, computed without a date library (days-to-civil).
fn write_timestamp(out: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    );
}

/// The level word of the last directive of a `RUST_LOG` value, lowercase
/// (`warn,mock_srv=debug` -> `debug`).
fn last_directive(spec: &str) -> String {
    let last = spec
        .split(',')
        .rfind(|s| !s.trim().is_empty())
        .unwrap_or("");
    last.rsplit('=')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn levels_parse_like_rust_log() {
        assert_eq!(Level::parse(""), Level::Info);
        assert_eq!(Level::parse("debug"), Level::Debug);
        assert_eq!(Level::parse("mock_srv=warn"), Level::Warn);
        assert_eq!(Level::parse("info,mock_srv=trace"), Level::Trace);
        assert_eq!(Level::parse("OFF"), Level::Off);
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        let mut out = Vec::new();
        write_timestamp(
            &mut out,
            UNIX_EPOCH + Duration::from_millis(1_795_276_800_123),
        );
        assert_eq!(String::from_utf8(out).unwrap(), "2026-11-21T16:00:00.123Z");
    }

    #[test]
    fn request_lines_read_like_formatted_ones() {
        let mut log = Log::new(Level::Info);
        log.request("127.0.0.1:5000", "GET", "/electronics?x=1", 200, 187);
        log.info(format_args!(
            "{} \"{} {}\" {} {}B",
            "127.0.0.1:5000", "GET", "/electronics?x=1", 200, 187
        ));
        let text = String::from_utf8(log.buf.clone()).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(
            lines,
            ["INFO  127.0.0.1:5000 \"GET /electronics?x=1\" 200 187B"; 2]
        );
        let mut quiet = Log::new(Level::Warn);
        quiet.request("127.0.0.1:5000", "GET", "/", 200, 0);
        assert!(quiet.buf.is_empty());
    }

    #[test]
    fn lines_below_the_level_are_dropped() {
        let mut log = Log::new(Level::Warn);
        log.info(format_args!("hidden"));
        log.warn(format_args!("shown {}", 1));
        let text = String::from_utf8(log.buf.clone()).unwrap();
        assert!(text.ends_with(" WARN  shown 1\n"), "{text}");
        assert!(!text.contains("hidden"));
    }
}
