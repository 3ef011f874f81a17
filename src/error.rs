//! Errors: `Error` for what stops the server from starting, `HttpError` for what a single
//! request did wrong (it carries the status it is answered with).

use std::fmt;
use std::io;

/// Why the server could not start: bad arguments, a bad data file, or an I/O failure
/// such as the port being in use.
#[derive(Debug)]
pub enum Error {
    /// A command-line argument is wrong; `main` exits 2.
    Usage(String),
    /// The `--data` file cannot be read or does not describe a valid catalog; exit 2.
    Data(String),
    /// Binding, registering or polling failed; exit 1.
    Io { context: String, source: io::Error },
    /// The journal cannot be read back into a state (damaged, or written for other data);
    /// exit 1.
    State(String),
}

impl Error {
    /// Wraps an I/O error with what was being attempted ("cannot listen on 127.0.0.1:3000").
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The process exit code `main` uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Data(_) => 2,
            Error::Io { .. } | Error::State(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg} (see --help)"),
            Error::Data(msg) | Error::State(msg) => write!(f, "{msg}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Error {
        Error::Usage(e.to_string())
    }
}

/// A request that is answered with an error status and a JSON body in Fastify's shape:
/// `{"statusCode":404,"error":"Not Found","message":"Order Z9 not found"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    status: u16,
    message: String,
    /// Extra response headers, such as `Allow` on a 405.
    pub headers: Vec<(&'static str, String)>,
}

impl HttpError {
    /// An error answered with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> HttpError {
        self.headers.push((name, value.into()));
        self
    }

    /// The status the response carries.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// What the client did wrong, in words.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body: `{"statusCode":..,"error":..,"message":..}`.
    pub fn body(&self) -> Vec<u8> {
        // A struct, not `json!`, so the keys keep Fastify's order.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            status_code: u16,
            error: &'a str,
            message: &'a str,
        }
        let body = Body {
            status_code: self.status,
            error: reason(self.status),
            message: &self.message,
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            reason(self.status),
            self.message
        )
    }
}

impl std::error::Error for HttpError {}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
