//! The master's web dashboard in a real browser: headless Chromium driven over WebDriver
//! ([`Browser`]) against a real cluster, the way an operator uses it.
//!
//! * The overview and the servers page show the live chunkservers, and the servers page
//!   shows a killed server turning dead without a reload; the charts fill from the history.
//! * A file's detail page lists its chunks and their replicas; missing paths render as
//!   error pages with the right status.
//! * An upload through the files page shows its progress reaching 100 %, and the file reads
//!   back byte-identical through a FUSE mount; a delete asks first, and a dismissed
//!   confirmation leaves the file.
//!
//! Screenshots of each page go to the artifacts directory ([`dfs_tests::artifacts_dir`]).

use std::fs;
use std::time::Duration;

use dfs_tests::{Browser, Cluster, ClusterOptions, http_get, pseudo_random_bytes};

/// Generous bound on anything the page should show by itself.
const SHOWS_UP: Duration = Duration::from_secs(30);

/// A cluster whose master notices a silent chunkserver within seconds and samples its
/// history twice a second.
fn cluster(chunk_size: u64) -> Cluster {
    Cluster::start(ClusterOptions {
        chunk_size,
        master_args: [
            "--heartbeat-timeout-secs",
            "1",
            "--dead-timeout-secs",
            "3",
            "--history-interval-ms",
            "500",
        ]
        .map(String::from)
        .to_vec(),
        ..ClusterOptions::default()
    })
}

/// The state the servers page shows for the chunkserver at `addr`.
fn server_state(browser: &Browser, addr: &str) -> String {
    browser.text(&format!("tr.server[data-addr='{addr}'] .state"))
}

#[test]
fn the_overview_and_servers_pages_follow_the_live_servers() {
    let mut cluster = cluster(64 << 20);
    let http = cluster.master_http_at(0);
    let browser = Browser::start();

    browser.goto(&format!("http://{http}/"));
    assert_eq!(browser.text("#servers-active"), "3");
    assert!(
        browser.text("#served-by").contains("master 1"),
        "{}",
        browser.text("#served-by")
    );
    let masters = browser.texts("#masters tbody tr");
    assert_eq!(masters.len(), 1);
    assert!(masters[0].contains("leader"), "{masters:?}");
    assert_eq!(browser.count("#charts figure.chart canvas"), 3);
    browser.wait_until(SHOWS_UP, "the charts hold samples", || {
        let drawn = browser.eval(
            "return Number(document.querySelector('#chart-latency').dataset.points || 0)",
            serde_json::json!([]),
        );
        drawn.as_u64().unwrap_or(0) >= 2
    });
    browser.screenshot("overview");

    let history = http_get(&http, "/api/v1/history").json();
    assert_eq!(history["node_id"], 1);
    assert_eq!(history["interval_ms"], 500);
    let samples = history["samples"].as_array().expect("samples");
    assert!(!samples.is_empty(), "{history}");
    assert!(samples[0]["ops_per_sec"].is_number(), "{history}");

    browser.goto(&format!("http://{http}/servers"));
    let addrs: Vec<String> = (0..3).map(|i| cluster.chunkserver_addr_at(i)).collect();
    assert_eq!(browser.count("tr.server"), 3);
    for addr in &addrs {
        assert_eq!(server_state(&browser, addr), "active", "{addr}");
    }
    assert_eq!(browser.count("button.decommission"), 3);
    browser.screenshot("servers");

    // A mark in the page's memory: if the page reloaded, it would be gone.
    browser.eval("window.sameDocument = true", serde_json::json!([]));
    cluster.stop_chunkserver(0, libc::SIGKILL);
    browser.wait_until(SHOWS_UP, "the killed server shows as dead", || {
        server_state(&browser, &addrs[0]) == "dead"
    });
    let same = browser.eval("return window.sameDocument === true", serde_json::json!([]));
    assert_eq!(same, true, "the page changed without a reload");
    for addr in &addrs[1..] {
        assert_eq!(server_state(&browser, addr), "active", "{addr}");
    }
    browser.screenshot("servers-one-dead");

    browser.goto(&format!("http://{http}/"));
    assert_eq!(browser.text("#servers-active"), "2");
}

#[test]
fn a_file_detail_page_lists_its_chunks_and_replicas() {
    let cluster = cluster(1 << 20);
    let mount = cluster.mount();
    let http = cluster.master_http_at(0);
    fs::create_dir(mount.join("photos")).unwrap();
    let data = pseudo_random_bytes(5, (5 << 20) / 2);
    fs::write(mount.join("photos/big.bin"), &data).unwrap();
    fs::write(mount.join("photos/small.txt"), b"hello").unwrap();
    let browser = Browser::start();

    browser.goto(&format!("http://{http}/files?path=/photos"));
    let names = browser.texts("#listing tr.entry a.file");
    assert_eq!(names, ["big.bin", "small.txt"]);
    let crumbs = browser.text("#breadcrumbs");
    assert!(crumbs.contains("photos"), "{crumbs}");
    browser.screenshot("files");

    browser.get("#name-filter").send_keys("small");
    browser.get("#filter button[type=submit]").click();
    browser.wait_until(SHOWS_UP, "the filter applies", || {
        browser.count("#listing tr.entry") == 1
    });
    assert_eq!(browser.text("#listing tr.entry a.file"), "small.txt");

    browser.goto(&format!("http://{http}/files?path=/photos"));
    browser
        .get("#listing tr.entry[data-name='big.bin'] a.file")
        .click();
    browser.wait_until(SHOWS_UP, "the detail page opens", || {
        browser.url().contains("/files/detail")
    });
    let size = browser.text("#file-size");
    assert!(size.starts_with(&format!("{} bytes", data.len())), "{size}");
    assert_eq!(
        browser.count("#chunks tr.chunk"),
        3,
        "2.5 MiB in 1 MiB chunks"
    );
    let mut servers: Vec<String> = (0..3).map(|i| cluster.chunkserver_addr_at(i)).collect();
    servers.sort();
    for index in 0..3 {
        let row = format!("#chunks tr.chunk[data-index='{index}']");
        let mut replicas = browser.texts(&format!("{row} li.replica .addr"));
        replicas.sort();
        assert_eq!(replicas, servers, "chunk {index}");
        for state in browser.texts(&format!("{row} li.replica .state")) {
            assert_eq!(state, "active", "chunk {index}");
        }
    }
    let download = browser.get("a.download").property("href");
    assert!(
        download
            .as_str()
            .unwrap_or_default()
            .ends_with("/api/v1/files/photos/big.bin"),
        "{download}"
    );
    browser.screenshot("file-detail");

    browser.goto(&format!("http://{http}/files?path=/photos/nothing-here"));
    let message = browser.text("#error-message");
    assert!(message.contains("no such file"), "{message}");
    let missing = http_get(&http, "/files?path=/photos/nothing-here");
    assert_eq!(missing.status, 404, "{}", missing.text());
    let missing = http_get(&http, "/files/detail?path=/nope.txt");
    assert_eq!(missing.status, 404, "{}", missing.text());
    let no_path = http_get(&http, "/files/detail");
    assert_eq!(no_path.status, 400, "{}", no_path.text());
    let file_as_dir = http_get(&http, "/files?path=/photos/small.txt/x");
    assert!(
        [400, 404].contains(&file_as_dir.status),
        "{}",
        file_as_dir.text()
    );
}

#[test]
fn an_upload_through_the_page_shows_its_progress_and_reads_back_through_a_mount() {
    let cluster = cluster(1 << 20);
    let mount = cluster.mount();
    let http = cluster.master_http_at(0);
    fs::create_dir(mount.join("inbox")).unwrap();
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("report.bin");
    let data = pseudo_random_bytes(7, (9 << 20) / 2);
    fs::write(&source, &data).unwrap();
    let browser = Browser::start();

    browser.goto(&format!("http://{http}/files?path=/inbox"));
    browser
        .get("#upload-file")
        .send_keys(source.to_str().unwrap());
    browser.get("#upload-button").click();
    browser.wait_until(SHOWS_UP, "the upload finishes", || {
        browser
            .eval(
                "return document.getElementById('upload-status').dataset.done || ''",
                serde_json::json!([]),
            )
            .as_str()
            .is_some_and(|done| !done.is_empty())
    });
    let status = browser.text("#upload-status");
    assert!(status.starts_with("Uploaded /inbox/report.bin"), "{status}");
    assert_eq!(browser.get("#upload-progress").property("value"), 100);
    browser.wait_until(SHOWS_UP, "the listing shows the new file", || {
        browser.count("#listing tr.entry[data-name='report.bin']") == 1
    });
    browser.screenshot("upload");

    let read = fs::read(mount.join("inbox/report.bin")).unwrap();
    assert!(read == data, "the uploaded file reads back as sent");
}

#[test]
fn deleting_from_the_page_asks_first() {
    let cluster = cluster(1 << 20);
    let mount = cluster.mount();
    let http = cluster.master_http_at(0);
    fs::create_dir(mount.join("old")).unwrap();
    fs::write(mount.join("old/draft.txt"), b"first draft").unwrap();
    let browser = Browser::start();
    let row = "#listing tr.entry[data-name='draft.txt']";

    browser.goto(&format!("http://{http}/files?path=/old"));
    browser.get(&format!("{row} button.delete")).click();
    let question = browser.wait_for_alert(SHOWS_UP);
    assert!(question.contains("/old/draft.txt"), "{question}");
    browser.dismiss_alert();
    browser.wait_until(SHOWS_UP, "the page says nothing was deleted", || {
        browser.text("#action-status").starts_with("Not deleted")
    });
    assert!(
        mount.join("old/draft.txt").exists(),
        "a dismissed delete keeps the file"
    );
    assert_eq!(browser.count(row), 1);

    browser.get(&format!("{row} button.delete")).click();
    browser.wait_for_alert(SHOWS_UP);
    browser.accept_alert();
    browser.wait_until(SHOWS_UP, "the listing drops the file", || {
        browser.count(row) == 0
    });
    let status = browser.text("#action-status");
    assert_eq!(status, "Deleted /old/draft.txt");
    dfs_tests::wait_until(SHOWS_UP, "the mount no longer sees the file", || {
        !mount.join("old/draft.txt").exists()
    });
}
