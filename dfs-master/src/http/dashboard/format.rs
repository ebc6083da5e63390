//! How the pages write values: byte sizes, times, server states, and paths in links.
//!
//! Plain functions of their inputs, so the wording is tested without a cluster.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dfs_proto::pb::{self, ServerState};

/// `bytes` in binary units, as `dfs status` shows them: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `part` of `whole` in percent, 0 for an empty whole.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 100.0 / whole as f64).min(100.0)
    }
}

/// The word for a chunkserver's state, also used as its CSS class.
pub fn server_state(state: i32) -> &'static str {
    match ServerState::try_from(state).unwrap_or(ServerState::Unspecified) {
        ServerState::Active => "active",
        ServerState::Stale => "stale",
        ServerState::Dead => "dead",
        ServerState::Draining => "draining",
        ServerState::Unspecified => "unknown",
    }
}

/// How long ago a heartbeat came, from milliseconds since it (0: none since the master
/// started).
pub fn heartbeat_age(ms: u64) -> String {
    if ms == 0 {
        return "never".into();
    }
    let age = Duration::from_millis(ms);
    if age < Duration::from_secs(120) {
        format!("{:.1} s ago", age.as_secs_f64())
    } else if age < Duration::from_secs(7200) {
        format!("{} min ago", age.as_secs() / 60)
    } else {
        format!("{} h ago", age.as_secs() / 3600)
    }
}

/// A wire timestamp in UTC, `2026-01-31 23:59:58 UTC`.
pub fn timestamp(t: Option<&pb::Timestamp>) -> String {
    let Some(t) = t else {
        return "—".into();
    };
    utc(t.secs)
}

/// A local time in UTC, as [`timestamp`] writes it.
pub fn system_time(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    utc(secs)
}

/// Seconds since the epoch as a UTC date and time (the proleptic Gregorian calendar).
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let second_of_day = secs.rem_euclid(86_400);
    // Days to a civil date: Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// `path` made absolute and tidy: one leading `/`, no empty or `.` components, no trailing
/// `/` (the root stays `/`).
pub fn clean_path(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// `path` (clean) joined with `name`.
pub fn child_path(path: &str, name: &str) -> String {
    if path == "/" {
        format!("/{name}")
    } else {
        format!("{path}/{name}")
    }
}

/// The directory holding `path` (clean); the root's is the root.
pub fn parent_path(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((parent, _)) => parent,
    }
}

/// The last name of `path` (clean); the root's is empty.
pub fn last_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// The breadcrumbs of `path` (clean): `(name, path)` of the root and each directory down to
/// it.
pub fn breadcrumbs(path: &str) -> Vec<(String, String)> {
    let mut crumbs = vec![("/".to_owned(), "/".to_owned())];
    let mut so_far = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        so_far.push('/');
        so_far.push_str(part);
        crumbs.push((part.to_owned(), so_far.clone()));
    }
    crumbs
}

/// `text` percent-encoded for a URL's query or a path segment: everything but the
/// unreserved characters (RFC 3986), and `/` too when `keep_slash` is false.
pub fn url_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && byte == b'/');
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The link to the listing of directory `path`.
pub fn files_href(path: &str) -> String {
    format!("/files?path={}", url_encode(path, true))
}

/// The link to the detail page of file `path`.
pub fn detail_href(path: &str) -> String {
    format!("/files/detail?path={}", url_encode(path, true))
}

/// The API address that downloads file `path`.
pub fn download_href(path: &str) -> String {
    format!("/api/v1/files{}", url_encode(path, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(percent(1, 4), 25.0);
        assert_eq!(percent(1, 0), 0.0);
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(heartbeat_age(0), "never");
        assert_eq!(heartbeat_age(1500), "1.5 s ago");
    }

    #[test]
    fn paths_are_cleaned_split_and_encoded() {
        assert_eq!(clean_path(""), "/");
        assert_eq!(clean_path("a//b/./c/"), "/a/b/c");
        assert_eq!(child_path("/", "x"), "/x");
        assert_eq!(child_path("/a", "x"), "/a/x");
        assert_eq!(parent_path("/a/b"), "/a");
        assert_eq!(parent_path("/a"), "/");
        assert_eq!(parent_path("/"), "/");
        assert_eq!(last_name("/a/b.txt"), "b.txt");
        let crumbs: Vec<String> = breadcrumbs("/a/b").into_iter().map(|c| c.1).collect();
        assert_eq!(crumbs, ["/", "/a", "/a/b"]);
        assert_eq!(url_encode("/a b/ü&x", true), "/a%20b/%C3%BC%26x");
        assert_eq!(url_encode("/a", false), "%2Fa");
        assert_eq!(download_href("/d/f 1"), "/api/v1/files/d/f%201");
    }
}
