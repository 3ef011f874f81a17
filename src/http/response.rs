//! Responses: what the routes build and the connection serialises into its output queue.

use tungstenite::Bytes;

use crate::error::{HttpError, reason};

/// A response the routes build and the connection serialises. The body is shared, not
/// copied: a cached body (a category listing, a built-in file) costs a reference count.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// Why the request was refused, for the log (set for refusals an operator should see
    /// the reason of, such as a 403).
    pub refused_because: Option<String>,
}

impl Response {
    /// A response with a body of `content_type`.
    pub fn typed(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            content_type: Some(content_type),
            headers: Vec::new(),
            body: body.into(),
            refused_because: None,
        }
    }

    /// A response with a JSON body.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Response {
        Response::typed(status, "application/json; charset=utf-8", body)
    }

    /// A response with no body (such as 204).
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Bytes::new(),
            refused_because: None,
        }
    }

    /// The JSON error response for `err`, with its extra headers.
    pub fn error(err: &HttpError) -> Response {
        let mut r = Response::json(err.status(), err.body());
        r.headers.extend(err.headers.iter().cloned());
        if err.status() == 403 {
            r.refused_because = Some(err.message().to_string());
        }
        r
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Appends the serialised response to `out`. `head_only` leaves the body out (HEAD)
    /// but keeps its Content-Length; `keep_alive` false adds `Connection: close`.
    pub fn write_to(&self, out: &mut Vec<u8>, head_only: bool, keep_alive: bool) {
        let length = (self.status >= 200 && self.status != 204).then_some(self.body.len());
        self.write_head(out, length, keep_alive);
        if !head_only && self.status != 204 {
            out.extend_from_slice(&self.body);
        }
    }

    /// Appends the head of a response whose body is a stream that ends when the connection
    /// closes: no length, `Connection: close`.
    pub fn write_stream_head(&self, out: &mut Vec<u8>) {
        self.write_head(out, None, false);
    }

    fn write_head(&self, out: &mut Vec<u8>, length: Option<usize>, keep_alive: bool) {
        // Plain appends rather than `write!`: this runs for every response.
        let mut digits = itoa::Buffer::new();
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(digits.format(self.status).as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = self.content_type {
            put_header(out, "Content-Type", ct);
        }
        if let Some(length) = length {
            put_header(out, "Content-Length", digits.format(length));
        }
        for (name, value) in &self.headers {
            put_header(out, name, value);
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `name: value\r\n`.
fn put_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_serialise_with_length_and_close() {
        let mut out = Vec::new();
        Response::json(200, b"{\"ok\":true}".to_vec()).write_to(&mut out, false, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 11\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"ok\":true}"));
        let mut head = Vec::new();
        Response::json(200, b"{}".to_vec()).write_to(&mut head, true, true);
        assert!(
            String::from_utf8(head)
                .unwrap()
                .ends_with("Content-Length: 2\r\n\r\n")
        );
    }
}
