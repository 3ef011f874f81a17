//! The routes: a complete request and what it may read in, an [`Outcome`] out: a
//! response, a WebSocket upgrade, or a change to apply, with what to answer once the
//! backend has applied it ([`finish`]). Request bodies are read and checked here; the rules
//! of the state are the catalog's, and its refusals become statuses here. No sockets.

mod access;
mod bodies;

pub use access::Access;

use access::{check_access, grant_cors, preflight};
use bodies::{bounded_amount, json_body, new_product, order_amount};

use tungstenite::Bytes;

use crate::error::HttpError;
use crate::http::{Method, Request, Response};
use crate::message::total_message;
use crate::metrics::Route;
use crate::state::{Applied, Backend, Catalog, CategoryId, Op, Refusal};
use crate::static_files::StaticFiles;

/// What the routes know besides the state.
#[derive(Debug)]
pub struct App {
    pub files: StaticFiles,
    pub access: Access,
    /// Serve the `/echo` WebSocket endpoint (`--echo`).
    pub echo: bool,
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
    /// Send `head` (its body is the stream), then the category's totals as events.
    Events {
        category: CategoryId,
        head: Response,
    },
    /// Answer with the server's counters (`GET /metrics`).
    Metrics,
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
        Ok(Outcome::Events { category, head }) => Outcome::Events {
            category,
            head: grant_cors(req, app, head),
        },
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
        // No Retry-After: sending it again could count it twice.
        Refusal::Uncertain(_) => 504,
    };
    HttpError::new(status, refusal.to_string())
}

/// Whether the request is an API call (orders, products, categories) as opposed to the web
/// app's files, a preflight, a WebSocket upgrade, an event stream or the health check: the
/// requests `--fail-rate` may fail and `--latency` holds.
pub fn is_api(req: &Request, catalog: &Catalog) -> bool {
    if req.method() == Method::Options
        || req.wants_websocket
        || event_stream(req, catalog).is_some()
    {
        return false;
    }
    let (parts, count) = segments(req.path());
    match &parts[..count] {
        ["orders", _] | ["categories"] => true,
        [name] => catalog.category(name).is_some(),
        _ => false,
    }
}

/// What a request was for, as `/metrics` counts it.
pub fn route_of(req: &Request, catalog: &Catalog) -> Route {
    let (parts, count) = segments(req.path());
    match &parts[..count] {
        ["orders", _] => Route::Orders,
        ["categories"] => Route::Categories,
        ["healthz"] => Route::Healthz,
        ["metrics"] => Route::Metrics,
        ["echo"] => Route::Echo,
        [name] if catalog.category(name).is_some() => Route::Category,
        // `/` and the app's files (a name with an extension).
        [name] if name.is_empty() || name.contains('.') => Route::Files,
        _ => Route::Other,
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
            Method::Get | Method::Head if let Some(category) = event_stream(req, catalog) => {
                Ok(events(category))
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
        ["metrics"] => match method {
            Method::Get | Method::Head => Ok(Outcome::Metrics),
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
            let r = Response::typed(200, content_type, body).header("Cache-Control", "no-cache");
            Ok(Outcome::Respond(r))
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

/// The category of a request for an event stream: `GET` (or `HEAD`) of
/// `/orders/<category>` with `Accept: text/event-stream`. Anything else with that header
/// is answered as without it (a product's total is JSON).
fn event_stream(req: &Request, catalog: &Catalog) -> Option<CategoryId> {
    if !req.wants_event_stream || !matches!(req.method(), Method::Get | Method::Head) {
        return None;
    }
    match segments(req.path()) {
        (["orders", name, _], 2) => catalog.category(name),
        _ => None,
    }
}

/// The head of the event stream of `category`.
fn events(category: CategoryId) -> Outcome {
    let head = Response::typed(200, "text/event-stream", Bytes::new())
        .header("Cache-Control", "no-cache")
        // Tells nginx not to buffer the stream.
        .header("X-Accel-Buffering", "no");
    Outcome::Events { category, head }
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
