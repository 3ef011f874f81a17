//! The static-file path guard must never let a request name anything outside the folder.
//!
//! Input: a request path as UTF-8 (other inputs are skipped). Checks, for every input:
//! - `safe_relative_path`: every segment it returns is a plain file name, and the segments
//!   joined under a root and normalised lexically stay strictly below that root;
//! - `StaticFiles::dir(..).get(path)` on a real folder holding one file (`index.html`),
//!   next to a secret file outside it and a symlink inside pointing at the secret: whatever
//!   it serves is that one file.

#![no_main]

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mock_srv::static_files::{StaticFiles, safe_relative_path};

const INSIDE: &[u8] = b"<!doctype html><title>inside</title>";
const SECRET: &[u8] = b"secret: outside the static folder";

struct Fixture {
    root: PathBuf,
    files: StaticFiles,
}

/// Made once per process: `<tmp>/mock-srv-fuzz-static-<pid>/{site/index.html,
/// site/escape.txt -> ../secret.txt, secret.txt}`. `<tmp>` is `$MOCK_SRV_FUZZ_TMP` (set by
/// fuzz/run.sh, which removes it afterwards) or the system temp folder.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tmp = std::env::var_os("MOCK_SRV_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let base = tmp.join(format!("mock-srv-fuzz-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let site = base.join("site");
        std::fs::create_dir_all(&site).expect("create the static folder");
        std::fs::write(site.join("index.html"), INSIDE).expect("write index.html");
        std::fs::write(base.join("secret.txt"), SECRET).expect("write secret.txt");
        std::os::unix::fs::symlink("../secret.txt", site.join("escape.txt"))
            .expect("create the escaping symlink");
        let files = StaticFiles::dir(&site).expect("StaticFiles::dir on the fixture");
        let root = site.canonicalize().expect("canonicalise the static folder");
        Fixture { root, files }
    })
}

/// `p` with `.` dropped and `..` applied, without touching the file system.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn check_segments(path: &str, segments: &[String]) {
    assert!(!segments.is_empty(), "{path:?}: no segments");
    for seg in segments {
        let bad = seg.is_empty()
            || seg == "."
            || seg == ".."
            || seg.starts_with('.')
            || seg.contains(['/', '\\', ':', '\0'])
            || seg.chars().any(char::is_control);
        assert!(!bad, "{path:?}: unsafe segment {seg:?} in {segments:?}");
    }
    let root = Path::new("/srv/static");
    let joined = segments.iter().fold(root.to_path_buf(), |p, s| p.join(s));
    let normal = normalise(&joined);
    assert!(
        normal.starts_with(root) && normal != root,
        "{path:?}: {segments:?} resolves to {} outside {}",
        normal.display(),
        root.display()
    );
    assert_eq!(
        normal.components().count(),
        root.components().count() + segments.len(),
        "{path:?}: {segments:?} is not one path component per segment"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let fx = fixture();

    let segments = safe_relative_path(path);
    if let Some(segments) = &segments {
        check_segments(path, segments);
    }

    if let Some((body, content_type)) = fx.files.get(path) {
        assert_ne!(body.as_ref(), SECRET, "{path:?} served the file outside the folder");
        assert_eq!(body.as_ref(), INSIDE, "{path:?} served something unexpected");
        let segments = segments.expect("served a path the guard refuses");
        assert_eq!(segments, ["index.html"], "{path:?} served by an unexpected name");
        let real = fx
            .root
            .join(&segments[0])
            .canonicalize()
            .expect("served file exists");
        assert!(real.starts_with(&fx.root) && real.is_file());
        assert!(content_type.starts_with("text/html"), "{path:?}: {content_type}");
    }
});
