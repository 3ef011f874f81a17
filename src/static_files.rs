//! The web app's files: the copy of `static/` built into the binary, or a folder given with
//! `--static`. The path guard decodes the request path once and refuses anything that could
//! name a file outside the folder: `..`, encoded or not, backslashes, NUL, hidden files.

use std::path::{Path, PathBuf};

use tungstenite::Bytes;

/// The built-in copy of `static/`, so the binary works from any folder.
const BUILT_IN: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("../static/index.html")),
    ("app.js", include_bytes!("../static/app.js")),
];

/// Where files come from.
#[derive(Debug, Clone)]
pub enum StaticFiles {
    BuiltIn,
    Dir(PathBuf),
}

impl StaticFiles {
    /// Serves from `dir` (canonicalised, so the containment check compares real paths).
    pub fn dir(dir: &Path) -> std::io::Result<StaticFiles> {
        let dir = dir.canonicalize()?;
        if !dir.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a folder",
                dir.display()
            )));
        }
        Ok(StaticFiles::Dir(dir))
    }

    /// The file for a request path (`/` means `index.html`) and its content type, or `None`
    /// when there is no such file or the path is refused by the guard.
    pub fn get(&self, request_path: &str) -> Option<(Bytes, &'static str)> {
        let rel = safe_relative_path(request_path)?;
        let body = match self {
            StaticFiles::BuiltIn => {
                let name = rel.join("/");
                Bytes::from_static(BUILT_IN.iter().find(|(n, _)| *n == name)?.1)
            }
            StaticFiles::Dir(root) => {
                let path = rel.iter().fold(root.clone(), |p, seg| p.join(seg));
                // Symlinks may point anywhere: compare the real path with the real root.
                let real = path.canonicalize().ok()?;
                if !real.starts_with(root) || !real.is_file() {
                    return None;
                }
                Bytes::from(std::fs::read(real).ok()?)
            }
        };
        Some((body, content_type(rel.last()?)))
    }
}

/// Splits a request path into safe segments, or `None` when it must not be served.
/// The path is percent-decoded exactly once; what decoding produces is checked again, so
/// `%2e%2e`, `..%2f` and `%5c` are refused and `%252e` stays a harmless literal `%2e`.
pub fn safe_relative_path(request_path: &str) -> Option<Vec<String>> {
    let decoded = percent_decode(request_path)?;
    let rel = decoded.strip_prefix('/')?;
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let mut segments = Vec::new();
    for seg in rel.split('/') {
        let bad = seg.is_empty()
            || seg.starts_with('.')
            || seg.contains(['\\', ':', '\0'])
            || seg.chars().any(char::is_control);
        if bad {
            return None;
        }
        segments.push(seg.to_string());
    }
    Some(segments)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The Content-Type for a file name, by extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_refuses_every_way_out() {
        for path in [
            "/../etc/passwd",
            "/..",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/..%2fetc%2fpasswd",
            "/a/../../etc/passwd",
            "/..\\etc\\passwd",
            "/%5c..%5cetc",
            "/.env",
            "/a//b",
            "/%00",
            "/%zz",
            "/%c0%ae%c0%ae/",
            "/C:/windows",
        ] {
            assert_eq!(safe_relative_path(path), None, "{path}");
        }
        // Double encoding decodes once, to a literal name with '%' in it: never a parent.
        assert_eq!(
            safe_relative_path("/%252e%252e/x"),
            Some(vec!["%2e%2e".into(), "x".into()])
        );
        assert_eq!(safe_relative_path("/"), Some(vec!["index.html".into()]));
        assert_eq!(safe_relative_path("/app.js"), Some(vec!["app.js".into()]));
    }

    #[test]
    fn built_in_files_have_their_types() {
        let files = StaticFiles::BuiltIn;
        let (body, ct) = files.get("/").unwrap();
        assert!(ct.starts_with("text/html"));
        assert!(
            std::str::from_utf8(&body)
                .unwrap()
                .contains("<template id=\"item\">")
        );
        assert!(
            files
                .get("/app.js")
                .unwrap()
                .1
                .starts_with("text/javascript")
        );
        assert!(files.get("/nope.js").is_none());
    }

    #[test]
    fn a_folder_serves_only_what_is_inside_it() {
        let dir = std::env::temp_dir().join(format!("mock-srv-static-{}", std::process::id()));
        let inside = dir.join("site");
        std::fs::create_dir_all(inside.join("css")).unwrap();
        std::fs::write(inside.join("css/a.css"), "body{}").unwrap();
        std::fs::write(dir.join("secret.txt"), "no").unwrap();
        let files = StaticFiles::dir(&inside).unwrap();
        assert_eq!(files.get("/css/a.css").unwrap().0.as_ref(), b"body{}");
        assert!(files.get("/../secret.txt").is_none());
        assert!(files.get("/%2e%2e/secret.txt").is_none());
        assert!(files.get("/css").is_none(), "folders are not files");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
