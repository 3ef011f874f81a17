//! Who may talk to the server: the Origins that get CORS grants and WebSocket upgrades,
//! the loopback Host check (DNS rebinding protection), and the CORS headers themselves.

use crate::error::HttpError;
use crate::http::{Request, Response};

use super::App;

/// Who may talk to the server: which Origins get CORS grants and WebSocket upgrades, and
/// whether Host headers must be loopback names (while bound to loopback).
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Refuse Host headers that are not loopback names (DNS rebinding protection).
    pub loopback_hosts_only: bool,
    /// Origins allowed besides `http://localhost:*`, `http://127.0.0.1:*`, `http://[::1]:*`.
    pub extra_origins: Vec<String>,
}

impl Access {
    /// Whether a page at `origin` may use the API. `host` is the request's Host header: a
    /// page served by this server itself (same origin) is always allowed.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        if let Some(rest) = origin.strip_prefix("http://")
            && (is_loopback_host(rest) || host.is_some_and(|h| h.eq_ignore_ascii_case(rest)))
        {
            return true;
        }
        self.extra_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// Whether `host` (a Host header or an origin's authority, with or without a port) names
/// this machine: `localhost`, `*.localhost`, `127.x.x.x` or `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inner, "")) => return inner == "::1",
            Some((inner, port)) if port.strip_prefix(':').is_some_and(valid_port) => {
                return inner == "::1";
            }
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    // A fully qualified name may end in a dot ("localhost.").
    let name = name.strip_suffix('.').unwrap_or(name);
    let bytes = name.as_bytes();
    let suffix = b".localhost";
    let localhost = bytes.eq_ignore_ascii_case(b"localhost")
        || bytes.len() >= suffix.len()
            && bytes[bytes.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
    localhost
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn valid_port(digits: &str) -> bool {
    digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<u16>().is_ok()
}

/// Adds the CORS grant when the request's Origin is allowed.
pub(super) fn grant_cors(req: &Request, app: &App, mut response: Response) -> Response {
    if let Some(origin) = req.origin.as_deref()
        && app.access.origin_allowed(origin, req.host.as_deref())
    {
        response
            .headers
            .push(("Access-Control-Allow-Origin", origin.to_string()));
        response.headers.push(("Vary", "Origin".into()));
    }
    response
}

/// Refuses foreign Host headers while on loopback, and Origins that are not allowed.
pub(super) fn check_access(req: &Request, access: &Access) -> Result<(), HttpError> {
    if let (true, Some(host)) = (access.loopback_hosts_only, req.host.as_deref())
        && !is_loopback_host(host)
    {
        return Err(HttpError::new(
            403,
            format!(
                "Host {host:?} is not a loopback name; mock-srv is bound to loopback (use --host to listen elsewhere)"
            ),
        ));
    }
    if let Some(origin) = req.origin.as_deref()
        && !access.origin_allowed(origin, req.host.as_deref())
    {
        return Err(HttpError::new(
            403,
            format!("Origin {origin} is not allowed; start mock-srv with --allow-origin {origin}"),
        ));
    }
    Ok(())
}

/// The 204 answer to `OPTIONS`, with what a CORS preflight needs (the Origin grant itself
/// is added by [`handle`] when the Origin is allowed). `allow` is what the path takes.
pub(super) fn preflight(req: &Request, allow: &'static str) -> Response {
    let headers = req
        .cors_request_headers
        .clone()
        .unwrap_or_else(|| "Content-Type".into());
    Response::empty(204)
        .header("Allow", allow)
        .header("Access-Control-Allow-Methods", allow)
        .header("Access-Control-Allow-Headers", headers)
        .header("Access-Control-Max-Age", "600")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:3000",
            "127.0.0.1:80",
            "127.1.2.3",
            "[::1]:3000",
            "[::1]",
            "app.localhost:5173",
            "localhost.:3000",
            "LocalHost:3000",
            "App.LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.com",
            "localhost.evil.com",
            "127.0.0.1.nip.io",
            "[::2]:80",
            "10.0.0.1",
            "localhost:x",
            "localhost:99999",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn origins() {
        let a = Access {
            loopback_hosts_only: true,
            extra_origins: vec!["http://my-app.test:8080".into()],
        };
        assert!(a.origin_allowed("http://localhost:5173", None));
        assert!(a.origin_allowed("http://[::1]:8000", None));
        assert!(a.origin_allowed("http://my-app.test:8080", None));
        assert!(
            a.origin_allowed("http://192.168.1.5:3000", Some("192.168.1.5:3000")),
            "same origin"
        );
        assert!(!a.origin_allowed("https://evil.com", Some("localhost:3000")));
        assert!(!a.origin_allowed("http://localhost.evil.com", None));
        assert!(!a.origin_allowed("null", None));
    }
}
