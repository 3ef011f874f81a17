//! Counters for `GET /metrics`, in the Prometheus text format. Counting is an increment in a
//! fixed table: no syscall and no allocation per request. What the server's state already
//! says (connections, subscribers, bytes queued) is counted when scraped, not kept.

use std::fmt::Write;

use crate::state::{Applied, Refusal};

/// What a request was for, as `/metrics` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/<category>`: products.
    Category,
    /// `/orders/<id|category>`: orders, totals, subscriptions.
    Orders,
    Categories,
    Healthz,
    Metrics,
    Echo,
    /// The web app's files.
    Files,
    /// Anything else: unknown paths, requests that could not be parsed.
    Other,
}

const ROUTES: [&str; 8] = [
    "category",
    "orders",
    "categories",
    "healthz",
    "metrics",
    "echo",
    "files",
    "other",
];

/// Statuses are 100 to 599: one slot each.
const FIRST_STATUS: usize = 100;
const STATUSES: usize = 500;

/// What the server counts as it goes.
#[derive(Debug)]
pub struct Counters {
    /// Requests answered, by route and status.
    requests: Box<[[u64; STATUSES]; ROUTES.len()]>,
    /// Totals changed: by orders (the simulator's included) and by products added (at 0).
    pub totals_changed: u64,
    pub products_added: u64,
    /// Changes the backend refused by the catalog's rules (a total out of range, a full
    /// category), and could not apply (503). Requests the routes refuse before submitting
    /// a change (an unknown id, a bad body) are counted in `requests` only.
    pub changes_refused: u64,
    pub changes_unavailable: u64,
    /// Changes the store did not answer in time, after they were sent (504).
    pub changes_uncertain: u64,
    /// Latest totals kept instead of queued by subscribers that have closed (the open
    /// ones are counted when scraped).
    pub conflated_closed: u64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            requests: Box::new([[0; STATUSES]; ROUTES.len()]),
            totals_changed: 0,
            products_added: 0,
            changes_refused: 0,
            changes_unavailable: 0,
            changes_uncertain: 0,
            conflated_closed: 0,
        }
    }
}

/// What is read from the server's state when scraped.
#[derive(Debug, Default)]
pub struct Gauges {
    pub http_connections: u64,
    pub websockets: u64,
    pub event_streams: u64,
    /// Streams subscribed to a category.
    pub websocket_subscribers: u64,
    pub event_stream_subscribers: u64,
    /// Bytes queued for all connections, not yet taken by their sockets.
    pub bytes_queued: u64,
    /// Requests waiting for the backend or their `--latency`.
    pub requests_held: u64,
    /// Totals handed to subscribers since start (each total once per subscriber).
    pub deliveries: u64,
    /// Latest totals kept instead of queued, over every subscriber there has been.
    pub conflated: u64,
}

impl Counters {
    /// Counts the result of a change a request asked for.
    pub fn change(&mut self, result: &Result<Applied, Refusal>) {
        match result {
            Ok(Applied::Product { .. }) => self.products_added += 1,
            // Orders are counted by the totals they change, the simulator's included.
            Ok(Applied::Total { .. }) => {}
            Err(Refusal::Unavailable(_)) => self.changes_unavailable += 1,
            Err(Refusal::Uncertain(_)) => self.changes_uncertain += 1,
            Err(_) => self.changes_refused += 1,
        }
    }

    /// Counts one answered request.
    pub fn request(&mut self, route: Route, status: u16) {
        let slot = (status as usize)
            .saturating_sub(FIRST_STATUS)
            .min(STATUSES - 1);
        self.requests[route as usize][slot] += 1;
    }

    /// The Prometheus text exposition of the counters and `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        family(
            &mut out,
            "mock_srv_requests_total",
            "counter",
            "HTTP requests answered, by route and status.",
        );
        for (route, statuses) in ROUTES.iter().zip(self.requests.iter()) {
            for (slot, &count) in statuses.iter().enumerate() {
                if count > 0 {
                    let status = slot + FIRST_STATUS;
                    let _ = writeln!(
                        out,
                        "mock_srv_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                    );
                }
            }
        }
        family(
            &mut out,
            "mock_srv_changes_total",
            "counter",
            "Changes submitted: orders (simulated ones included) and new products applied, \
             refused by the catalog's rules (a total out of range, a full category), or not \
             applied because the backend could not.",
        );
        for (result, count) in [
            ("order_applied", self.totals_changed - self.products_added),
            ("product_added", self.products_added),
            ("refused", self.changes_refused),
            ("unavailable", self.changes_unavailable),
            ("uncertain", self.changes_uncertain),
        ] {
            let _ = writeln!(out, "mock_srv_changes_total{{result=\"{result}\"}} {count}");
        }
        family(
            &mut out,
            "mock_srv_connections",
            "gauge",
            "Open connections, by protocol.",
        );
        for (protocol, count) in [
            ("http", gauges.http_connections),
            ("websocket", gauges.websockets),
            ("sse", gauges.event_streams),
        ] {
            let _ = writeln!(
                out,
                "mock_srv_connections{{protocol=\"{protocol}\"}} {count}"
            );
        }
        family(
            &mut out,
            "mock_srv_subscribers",
            "gauge",
            "Streams subscribed to a category, by protocol.",
        );
        for (protocol, count) in [
            ("websocket", gauges.websocket_subscribers),
            ("sse", gauges.event_stream_subscribers),
        ] {
            let _ = writeln!(
                out,
                "mock_srv_subscribers{{protocol=\"{protocol}\"}} {count}"
            );
        }
        for (name, kind, help, value) in [
            (
                "mock_srv_deliveries_total",
                "counter",
                "Totals handed to subscribers, each once per subscriber of its category.",
                gauges.deliveries,
            ),
            (
                "mock_srv_conflated_total",
                "counter",
                "Totals a subscriber reading too slowly skipped: only the latest of each \
                 product was kept.",
                gauges.conflated,
            ),
            (
                "mock_srv_bytes_queued",
                "gauge",
                "Bytes queued for connections and not yet written to their sockets.",
                gauges.bytes_queued,
            ),
            (
                "mock_srv_requests_held",
                "gauge",
                "Requests waiting for their change to be applied, or for their --latency.",
                gauges.requests_held,
            ),
        ] {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_prometheus_text() {
        let mut c = Counters::default();
        c.request(Route::Orders, 200);
        c.request(Route::Orders, 200);
        c.request(Route::Other, 404);
        c.request(Route::Other, 999);
        c.totals_changed = 3;
        c.change(&Ok(Applied::Product {
            category: 0,
            id: "A3".into(),
        }));
        c.change(&Err(Refusal::UnknownProduct("Z9".into())));
        let text = c.render(&Gauges {
            websockets: 3,
            websocket_subscribers: 2,
            ..Gauges::default()
        });
        for line in [
            "# TYPE mock_srv_requests_total counter",
            "mock_srv_requests_total{route=\"orders\",status=\"200\"} 2",
            "mock_srv_requests_total{route=\"other\",status=\"404\"} 1",
            "mock_srv_requests_total{route=\"other\",status=\"599\"} 1",
            "mock_srv_changes_total{result=\"order_applied\"} 2",
            "mock_srv_changes_total{result=\"product_added\"} 1",
            "mock_srv_changes_total{result=\"refused\"} 1",
            "mock_srv_connections{protocol=\"websocket\"} 3",
            "mock_srv_subscribers{protocol=\"websocket\"} 2",
            "mock_srv_bytes_queued 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(!text.contains("status=\"201\""), "only statuses seen");
        // Every sample line is `name{labels} value` or `name value`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = l.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
        }
    }
}
