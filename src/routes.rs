//! The routes: a complete request and what it may read in, an [`Outcome`] out: a
//! response, a WebSocket upgrade, or a change to apply, with what to answer once the
//! backend has applied it ([`finish`]). Request bodies are read and checked here; the rules
//! of the state are the catalog's, and its refusals become statuses here. No sockets.

use serde_json::Value;
use tungstenite::Bytes;

use crate::error::HttpError;
use crate::http::{Method, Request, Response};
use crate::message::total_message;
use crate::state::{Applied, Backend, Catalog, CategoryId, MAX_TOTAL, NewProduct, Op, Refusal};
use crate::static_files::StaticFiles;

/// Longest `name`, `rrp` and `info` of a new product, in characters.
const MAX_NAME_CHARS: usize = 200;
const MAX_RRP_CHARS: usize = 20;
const MAX_INFO_CHARS: usize = 2000;

/// What the routes know besides the state.
#[derive(Debug)]
pub struct App {
    pub files: StaticFiles,
    pub access: Access,
    /// Serve the `/echo` WebSocket endpoint (`--echo`).
    pub echo: bool,
}

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

/// What the server must do with a request.
#[derive(Debug)]
pub enum Outcome {
    /// Send this response.
    Respond(Response),
    /// Answer `101 Switching Protocols` with this `Sec-WebSocket-Accept` value and
    /// continue as a WebSocket on `channel`.
    Upgrade {
        channel: Channel,
        accept_key: String,
    },
    /// Apply the change, then answer as `Then` says ([`finish`]).
    Apply(Op, Then),
}

/// What a request that changes the state is answered with once the change is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// `200 {"ok":true}` (an order).
    Ok,
    /// `201` and the category's updated listing (a new product).
    Listing(CategoryId),
}

/// What a WebSocket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `/orders/<category>`: totals of the category (`None`: unknown, sends nothing).
    Orders(Option<CategoryId>),
    /// `/echo` (only with `--echo`): every message comes back, for conformance tests.
    Echo,
}

/// What each kind of path takes: the same list answers `OPTIONS` and a 405.
const ALLOW_ORDERS: &str = "GET, HEAD, POST, OPTIONS";
const ALLOW_CATEGORY: &str = "GET, HEAD, POST, OPTIONS";
const ALLOW_READ_ONLY: &str = "GET, HEAD, OPTIONS";

/// Routes one request. Every response gets the CORS headers its Origin deserves.
pub fn handle(req: &Request, app: &App, backend: &dyn Backend) -> Outcome {
    let outcome = check_access(req, &app.access).and_then(|()| route(req, app, backend));
    match outcome {
        Ok(Outcome::Respond(r)) => Outcome::Respond(grant_cors(req, app, r)),
        Ok(outcome) => outcome,
        Err(err) => Outcome::Respond(grant_cors(req, app, Response::error(&err))),
    }
}

/// The answer to a request whose change has been applied (or refused), as `then` says.
pub fn finish(
    req: &Request,
    app: &App,
    catalog: &Catalog,
    then: Then,
    result: Result<Applied, Refusal>,
) -> Response {
    let response = match (result, then) {
        (Ok(_), Then::Ok) => Response::json(200, Bytes::from_static(br#"{"ok":true}"#)),
        (Ok(_), Then::Listing(cat)) => products(catalog, cat, 201),
        (Err(refusal), _) => Response::error(&refused(&refusal)),
    };
    grant_cors(req, app, response)
}

/// The status a refusal is answered with, and its words.
fn refused(refusal: &Refusal) -> HttpError {
    let status = match refusal {
        Refusal::UnknownProduct(_) => 404,
        Refusal::OutOfRange { .. } => 400,
        Refusal::CategoryFull(_) => 409,
        Refusal::Unavailable(_) => {
            return HttpError::new(503, refusal.to_string()).with_header("Retry-After", "1");
        }
    };
    HttpError::new(status, refusal.to_string())
}

/// Whether the request is an API call (orders, products, categories) as opposed to the web
/// app's files, a preflight, a WebSocket upgrade or the health check: the requests
/// `--fail-rate` may fail on purpose.
pub fn is_api(req: &Request, catalog: &Catalog) -> bool {
    if req.method() == Method::Options || req.wants_websocket {
        return false;
    }
    let (parts, count) = segments(req.path());
    match &parts[..count] {
        ["orders", _] | ["categories"] => true,
        [name] => catalog.category(name).is_some(),
        _ => false,
    }
}

/// A 503 injected by `--fail-rate`: a JSON body, `Retry-After`, and a header that tells
/// it from a real failure.
pub fn injected_failure(req: &Request, app: &App, percent: u8) -> Response {
    let err = HttpError::new(
        503,
        format!("failure injected on purpose (--fail-rate {percent}); nothing was changed"),
    );
    let response = Response::error(&err)
        .header("Retry-After", "1")
        .header("X-Mock-Srv-Injected", "fail-rate");
    grant_cors(req, app, response)
}

/// Adds the CORS grant when the request's Origin is allowed.
fn grant_cors(req: &Request, app: &App, mut response: Response) -> Response {
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
fn check_access(req: &Request, access: &Access) -> Result<(), HttpError> {
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

/// The segments of a path: routes have one or two, and any rest is kept as a third so that
/// longer paths match no route pattern.
fn segments(path: &str) -> ([&str; 3], usize) {
    let mut parts = [""; 3];
    let mut count = 0;
    for (slot, part) in parts
        .iter_mut()
        .zip(path.get(1..).unwrap_or("").splitn(3, '/'))
    {
        *slot = part;
        count += 1;
    }
    (parts, count)
}

/// The methods a path takes.
fn allowed(segments: &[&str], catalog: &Catalog) -> &'static str {
    match segments {
        ["orders", _] => ALLOW_ORDERS,
        [name] if catalog.category(name).is_some() => ALLOW_CATEGORY,
        _ => ALLOW_READ_ONLY,
    }
}

fn route(req: &Request, app: &App, backend: &dyn Backend) -> Result<Outcome, HttpError> {
    let catalog = backend.catalog();
    let method = req.method();
    let (parts, count) = segments(req.path());
    let segments = &parts[..count];
    if method == Method::Options {
        return Ok(Outcome::Respond(preflight(req, allowed(segments, catalog))));
    }
    match segments {
        ["echo"] if app.echo && method == Method::Get && req.wants_websocket => {
            upgrade(req, Channel::Echo)
        }
        ["orders", name] => match method {
            Method::Get if req.wants_websocket => {
                upgrade(req, Channel::Orders(catalog.category(name)))
            }
            Method::Get | Method::Head => totals(catalog, name).map(Outcome::Respond),
            Method::Post => {
                if !catalog.contains(name) {
                    return Err(HttpError::new(404, format!("Order {name} not found")));
                }
                let amount = bounded_amount(order_amount(req)?)?;
                let op = Op::AddAmount {
                    id: (*name).to_string(),
                    amount,
                };
                Ok(Outcome::Apply(op, Then::Ok))
            }
            _ => Err(not_allowed(method, ALLOW_ORDERS)),
        },
        ["healthz"] => match method {
            Method::Get | Method::Head => health(backend).map(Outcome::Respond),
            _ => Err(not_allowed(method, ALLOW_READ_ONLY)),
        },
        ["categories"] => match method {
            Method::Get | Method::Head => Ok(Outcome::Respond(categories(catalog))),
            _ => Err(not_allowed(method, ALLOW_READ_ONLY)),
        },
        [name] if catalog.category(name).is_some() => {
            let cat = catalog.category(name).expect("checked by the guard");
            match method {
                Method::Get | Method::Head => Ok(Outcome::Respond(products(catalog, cat, 200))),
                Method::Post => {
                    let product = new_product(&json_body(req)?)?;
                    let op = Op::AddProduct {
                        category: cat,
                        product,
                    };
                    Ok(Outcome::Apply(op, Then::Listing(cat)))
                }
                _ => Err(not_allowed(method, ALLOW_CATEGORY)),
            }
        }
        _ => static_file(req, app, catalog, segments),
    }
}

/// `GET /` and `GET /<file>`; anything else on a path that is not a route is 404 (405 for
/// another method on a file that exists).
fn static_file(
    req: &Request,
    app: &App,
    catalog: &Catalog,
    segments: &[&str],
) -> Result<Outcome, HttpError> {
    let path = req.path();
    let file = app.files.get(path);
    match (req.method(), file) {
        (Method::Get | Method::Head, Some((body, content_type))) => {
            let r = Response {
                status: 200,
                content_type: Some(content_type),
                headers: Vec::new(),
                body,
                refused_because: None,
            };
            Ok(Outcome::Respond(r.header("Cache-Control", "no-cache")))
        }
        (method, Some(_)) => Err(not_allowed(method, ALLOW_READ_ONLY)),
        (_, None) => match segments {
            [name] if !name.contains('.') && !name.is_empty() => {
                let known: Vec<&str> = catalog.category_names().collect();
                Err(HttpError::new(
                    404,
                    format!(
                        "Category {name} not found (categories: {})",
                        known.join(", ")
                    ),
                ))
            }
            _ => Err(HttpError::new(404, format!("{path} not found"))),
        },
    }
}

/// 405 with the `Allow` header listing what the path takes.
fn not_allowed(method: Method, allow: &'static str) -> HttpError {
    HttpError::new(
        405,
        format!("{} is not allowed here (allowed: {allow})", method.as_str()),
    )
    .with_header("Allow", allow)
}

/// `GET /orders/<id>`: `{"id":..,"total":..}`; `GET /orders/<category>`: the category's
/// `[{id,total}]` in id order. (With `Upgrade: websocket` the same path subscribes.)
fn totals(catalog: &Catalog, name: &str) -> Result<Response, HttpError> {
    if let Some(total) = catalog.total(name) {
        return Ok(Response::json(200, total_message(name, total)));
    }
    let Some(cat) = catalog.category(name) else {
        let known: Vec<&str> = catalog.category_names().collect();
        return Err(HttpError::new(
            404,
            format!(
                "{name} is neither a product id nor a category (categories: {})",
                known.join(", ")
            ),
        ));
    };
    #[derive(serde::Serialize)]
    struct Total<'a> {
        id: &'a str,
        total: u64,
    }
    let list: Vec<Total> = catalog
        .products(cat)
        .iter()
        .map(|p| Total {
            id: &p.id,
            total: p.total,
        })
        .collect();
    Ok(Response::json(
        200,
        serde_json::to_vec(&list).unwrap_or_default(),
    ))
}

/// `GET /healthz`: 200 `{"status":"ok"}` while changes can be applied; 503 saying why
/// while the backend cannot apply them (its disk is failing).
fn health(backend: &dyn Backend) -> Result<Response, HttpError> {
    match backend.health() {
        Ok(()) => Ok(Response::json(
            200,
            Bytes::from_static(br#"{"status":"ok"}"#),
        )),
        Err(why) => Err(HttpError::new(503, why).with_header("Retry-After", "1")),
    }
}

/// `GET /categories`: `[{name,prefix,products}]`, what the web app builds its select from.
fn categories(catalog: &Catalog) -> Response {
    #[derive(serde::Serialize)]
    struct Category<'a> {
        name: &'a str,
        prefix: &'a str,
        products: usize,
    }
    let list: Vec<Category> = (0..catalog.category_names().count())
        .map(|cat| Category {
            name: catalog.category_name(cat),
            prefix: catalog.prefix(cat),
            products: catalog.products(cat).len(),
        })
        .collect();
    Response::json(200, serde_json::to_vec(&list).unwrap_or_default())
}

/// The category's products as `[{id,name,rrp,info}]`.
fn products(catalog: &Catalog, cat: CategoryId, status: u16) -> Response {
    Response::json(status, catalog.listing(cat).clone())
}

/// The 204 answer to `OPTIONS`, with what a CORS preflight needs (the Origin grant itself
/// is added by [`handle`] when the Origin is allowed). `allow` is what the path takes.
fn preflight(req: &Request, allow: &'static str) -> Response {
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

/// The amount of an order body, with the refusals of [`parse_amount`]. The body
/// every client sends, `{"amount": <integer>}` and nothing else, is read straight into an
/// integer; any other body goes through a `Value`, so each refusal keeps its message.
fn order_amount(req: &Request) -> Result<i128, HttpError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Order {
        amount: i64,
    }
    check_json_content_type(req)?;
    // Only an object: serde would also read a struct from an array (`[1]`).
    let object = req.body.trim_ascii_start().starts_with(b"{");
    if object && let Ok(order) = serde_json::from_slice::<Order>(&req.body) {
        return Ok(order.amount.into());
    }
    parse_amount(&json_body(req)?)
}

/// An amount that can be applied to some total: one outside `-MAX_TOTAL..=MAX_TOTAL` would
/// take any total out of `0..=MAX_TOTAL`.
fn bounded_amount(amount: i128) -> Result<i64, HttpError> {
    if amount.unsigned_abs() > u128::from(MAX_TOTAL) {
        return Err(HttpError::new(
            400,
            format!("amount {amount} would take any total outside 0..={MAX_TOTAL}"),
        ));
    }
    Ok(amount as i64)
}

/// The amount of an order body: a JSON integer. Fractions, exponents, strings and null are
/// refused even when JavaScript would call them whole (`1.0`, `1e3`).
pub fn parse_amount(body: &Value) -> Result<i128, HttpError> {
    let Some(obj) = body.as_object() else {
        return Err(HttpError::new(
            400,
            "body must be a JSON object like {\"amount\": 10}",
        ));
    };
    let Some(amount) = obj.get("amount") else {
        return Err(HttpError::new(
            400,
            "body must have required property 'amount'",
        ));
    };
    let integer = match amount {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    };
    integer.ok_or_else(|| {
        HttpError::new(
            400,
            format!("Supplied amount must be an integer, got {amount}"),
        )
    })
}

/// A new product from a POST body `{name, rrp, info}`; 400 naming the field when wrong.
fn new_product(body: &Value) -> Result<NewProduct, HttpError> {
    let Some(obj) = body.as_object() else {
        return Err(HttpError::new(
            400,
            "body must be a JSON object {name, rrp, info}",
        ));
    };
    Ok(NewProduct {
        name: text_field(obj, "name", MAX_NAME_CHARS)?,
        rrp: rrp_field(obj)?,
        info: text_field(obj, "info", MAX_INFO_CHARS)?,
    })
}

/// A required string field of a new product, trimmed, non-empty and at most `max` chars.
fn text_field(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<String, HttpError> {
    let value = match obj.get(field) {
        None => {
            return Err(HttpError::new(
                400,
                format!("body must have required property '{field}'"),
            ));
        }
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(HttpError::new(400, format!("body/{field} must be string"))),
    };
    if value.is_empty() {
        return Err(HttpError::new(
            400,
            format!("body/{field} must not be empty"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(HttpError::new(
            400,
            format!("body/{field} must not contain control characters"),
        ));
    }
    if value.chars().count() > max {
        return Err(HttpError::new(
            400,
            format!("body/{field} must be at most {max} characters"),
        ));
    }
    Ok(value.to_string())
}

/// The `rrp` of a new product: a price such as "9.99" (a JSON number is taken as written).
fn rrp_field(obj: &serde_json::Map<String, Value>) -> Result<String, HttpError> {
    let text = match obj.get("rrp") {
        Some(Value::Number(n)) => n.to_string(),
        _ => text_field(obj, "rrp", MAX_RRP_CHARS)?,
    };
    let (whole, frac) = text.split_once('.').unwrap_or((&text, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if text.len() > MAX_RRP_CHARS || !digits(whole) || !digits(frac) {
        return Err(HttpError::new(
            400,
            format!("body/rrp must be a price like \"9.99\", got {text:?}"),
        ));
    }
    Ok(text)
}

/// Parses a JSON request body; 415 for a Content-Type that is not JSON, 400 for bad JSON.
fn json_body(req: &Request) -> Result<Value, HttpError> {
    check_json_content_type(req)?;
    if req.body.is_empty() {
        return Err(HttpError::new(400, "body must be JSON, and it is empty"));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| HttpError::new(400, format!("body is not valid JSON: {e}")))
}

/// 415 for a Content-Type that is not JSON (none at all is accepted).
fn check_json_content_type(req: &Request) -> Result<(), HttpError> {
    if let Some(ct) = req.content_type.as_deref() {
        let media = ct.split(';').next().unwrap_or("").trim().as_bytes();
        let suffix = b"+json";
        let json = media.eq_ignore_ascii_case(b"application/json")
            || media.len() >= suffix.len()
                && media[media.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
        if !json {
            return Err(HttpError::new(
                415,
                format!("Unsupported Media Type: {ct}; send Content-Type: application/json"),
            ));
        }
    }
    Ok(())
}

/// Checks a WebSocket handshake request (RFC 6455 section 4.2.1).
fn upgrade(req: &Request, channel: Channel) -> Result<Outcome, HttpError> {
    if !req.http11 {
        return Err(HttpError::new(400, "WebSocket upgrades need HTTP/1.1"));
    }
    if req.ws_version.as_deref() != Some("13") {
        return Err(HttpError::new(426, "Sec-WebSocket-Version must be 13")
            .with_header("Sec-WebSocket-Version", "13"));
    }
    let key = req.ws_key.as_deref().unwrap_or("");
    let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    if key.len() != 24 || !key.ends_with("==") || !key.bytes().take(22).all(base64) {
        return Err(HttpError::new(
            400,
            "Sec-WebSocket-Key must be 16 bytes in base64",
        ));
    }
    Ok(Outcome::Upgrade {
        channel,
        accept_key: tungstenite::handshake::derive_accept_key(key.as_bytes()),
    })
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

    /// The direct read of `{"amount": n}` must agree with the `Value` path on every body.
    #[test]
    fn order_amounts_read_directly_match_the_value_path() {
        let bodies = [
            r#"{"amount":1}"#,
            r#" { "amount" : -42 } "#,
            r#"{"amount":9223372036854775807}"#,
            r#"{"amount":9223372036854775808}"#,
            r#"{"amount":-9223372036854775808}"#,
            r#"{"amount":-0}"#,
            r#"{"amount":1.0}"#,
            r#"{"amount":1e3}"#,
            r#"{"amount":"10"}"#,
            r#"{"amount":null}"#,
            r#"{"amount":1,"amount":2}"#,
            r#"{"amount":1,"note":"x"}"#,
            r#"{"\u0061mount":7}"#,
            r#"{}"#,
            r#"[1]"#,
            r#"5"#,
            r#"{"amount":1} x"#,
            r#"{"amount":01}"#,
            r#"{"amount":1,}"#,
            r#"{"amount":[1]}"#,
            r#"{"amount":{"a":1}}"#,
            "{\"amount\":3}\n",
            "\u{c}{\"amount\":3}",
            "",
        ];
        for body in bodies {
            let req = Request {
                body: body.as_bytes().to_vec(),
                content_type: Some("Application/JSON; charset=utf-8".into()),
                ..Request::default()
            };
            let reference = json_body(&req).and_then(|v| parse_amount(&v));
            assert_eq!(order_amount(&req), reference, "{body}");
        }
        let xml = Request {
            body: br#"{"amount":1}"#.to_vec(),
            content_type: Some("text/xml".into()),
            ..Request::default()
        };
        assert_eq!(order_amount(&xml).unwrap_err().status(), 415);
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

    /// Moved from the catalog's tests: the body half of the amount rules.
    #[test]
    fn order_bodies_must_hold_an_integer_amount_within_reach_of_a_total() {
        use serde_json::json;
        let amount = |v: Value| parse_amount(&v).and_then(bounded_amount);
        assert_eq!(amount(json!({"amount": 10})), Ok(10));
        assert_eq!(amount(json!({"amount": -13})), Ok(-13));
        assert_eq!(amount(json!({"amount": MAX_TOTAL})), Ok(MAX_TOTAL as i64));
        for bad in [
            json!({"amount": 1.5}),
            json!({"amount": "10"}),
            json!({"amount": null}),
            json!({"amount": 1.0}),
            json!({}),
            json!([1]),
            json!({"amount": 9223372036854775808u64}),
            json!({"amount": MAX_TOTAL + 1}),
        ] {
            assert_eq!(amount(bad.clone()).unwrap_err().status(), 400, "{bad}");
        }
    }

    #[test]
    fn new_product_errors_name_the_field() {
        use serde_json::json;
        let cases = [
            (json!({"rrp": "1", "info": "i"}), "'name'"),
            (json!({"name": 5, "rrp": "1", "info": "i"}), "body/name"),
            (json!({"name": "n", "rrp": "abc", "info": "i"}), "body/rrp"),
            (json!({"name": "n", "rrp": "1"}), "'info'"),
            (json!({"name": " ", "rrp": "1", "info": "i"}), "body/name"),
            (
                json!({"name": "a\u{0}b", "rrp": "1", "info": "i"}),
                "body/name",
            ),
        ];
        for (body, field) in cases {
            let err = new_product(&body).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.message().contains(field), "{body}: {}", err.message());
        }
    }

    #[test]
    fn refusals_have_their_status() {
        let out_of_range = Refusal::OutOfRange {
            id: "A1".into(),
            total: 3,
            amount: -4,
        };
        assert_eq!(refused(&Refusal::UnknownProduct("Z9".into())).status(), 404);
        assert_eq!(refused(&out_of_range).status(), 400);
        assert_eq!(refused(&Refusal::CategoryFull("toys".into())).status(), 409);
        assert_eq!(
            refused(&Refusal::UnknownProduct("Z9".into())).message(),
            "Order Z9 not found"
        );
    }
}
