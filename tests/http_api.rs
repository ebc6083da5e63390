//! The master's JSON API under `/api/v1`, spoken to as a browser, `curl` or a script would:
//! a large file streamed up and down through a follower while a mount reads it, byte ranges,
//! the namespace calls, the cluster's reports, the OpenAPI document, and every error with its
//! status and JSON body (and nothing changed by a refused request), also for hostile requests
//! drawn at random (a seeded fuzz; `DFS_FUZZ_SEED`, `DFS_FUZZ_ITERATIONS`).

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::Duration;

use dfs_tests::{
    Cluster, ClusterOptions, HttpReply, http_get, http_request, pseudo_random_bytes, sha256_file,
    wait_until,
};

/// Asserts that `reply` is the JSON error `status`/`code`.
fn assert_error(reply: &HttpReply, status: u16, code: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {content_type}"
    );
    let body = reply.json();
    assert_eq!(body["error"]["status"], status, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

/// `curl ARGS`; returns the HTTP status it printed with `-w '%{http_code}'`.
fn curl(args: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args(["-sS", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl printed {text}"))
}

/// Uploads `body` to `path` with a plain PUT.
fn put(addr: &str, path: &str, body: &[u8]) -> HttpReply {
    http_request(addr, "PUT", path, &[], body)
}

/// `GET path` with a `Range` header.
fn get_range(addr: &str, path: &str, range: &str) -> HttpReply {
    http_request(addr, "GET", path, &[("Range", range)], &[])
}

/// The names of a listing reply.
fn names(listing: &serde_json::Value) -> Vec<String> {
    listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_large_file_streams_through_a_follower_while_a_mount_reads_it() {
    let cluster = Cluster::start(ClusterOptions {
        masters: 3,
        ..ClusterOptions::default()
    });
    let follower = (cluster.leader() + 1) % 3;
    let api = cluster.master_http_at(follower);
    let mount = cluster.mount();
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("original.bin");
    let data = pseudo_random_bytes(7, 100 << 20);
    fs::write(&original, &data).unwrap();
    let want = sha256_file(&original);

    let url = format!("http://{api}/api/v1/files/big%20file.bin");
    let reply = work.path().join("reply.json");
    let status = curl(&[
        "-T",
        original.to_str().unwrap(),
        "-o",
        reply.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(status, 201, "{}", fs::read_to_string(&reply).unwrap());
    let stat: serde_json::Value = serde_json::from_slice(&fs::read(&reply).unwrap()).unwrap();
    assert_eq!(stat["size"], 100u64 << 20, "{stat}");
    assert_eq!(stat["kind"], "file");
    assert_eq!(stat["path"], "/big file.bin");

    // Downloaded through the API while the mount reads the same file.
    let through_mount = mount.join("big file.bin");
    let reader = thread::spawn(move || sha256_file(&through_mount));
    let downloaded = work.path().join("downloaded.bin");
    assert_eq!(curl(&["-o", downloaded.to_str().unwrap(), &url]), 200);
    assert_eq!(sha256_file(&downloaded), want, "downloaded through the API");
    assert_eq!(reader.join().unwrap(), want, "read through the mount");

    let head = http_request(&api, "HEAD", "/api/v1/files/big%20file.bin", &[], &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("104857600"));
    assert_eq!(head.header("accept-ranges"), Some("bytes"));

    // Byte ranges, byte for byte.
    let path = "/api/v1/files/big%20file.bin";
    let size = data.len() as u64;
    let mid = (64 << 20) - 5; // across the chunk boundary
    for (range, start, end) in [
        ("bytes=0-99".to_string(), 0, 99),
        (format!("bytes={mid}-{}", mid + 9), mid, mid + 9),
        ("bytes=-1000".to_string(), size - 1000, size - 1),
        (format!("bytes={}-", size - 4097), size - 4097, size - 1),
        (format!("bytes=10-{}", size + 50), 10, size - 1),
    ] {
        let reply = get_range(&api, path, &range);
        assert_eq!(reply.status, 206, "{range}: {}", reply.text());
        let content_range = format!("bytes {start}-{end}/{size}");
        assert_eq!(reply.header("content-range"), Some(content_range.as_str()));
        let want = &data[start as usize..=end as usize];
        assert_eq!(reply.body.len(), want.len(), "{range}");
        assert!(reply.body == want, "{range}: bytes differ");
    }
    for range in [
        format!("bytes={size}-"),
        "bytes=5-2".into(),
        "lines=1-2".into(),
    ] {
        let reply = get_range(&api, path, &range);
        assert_error(&reply, 416, "RANGE_NOT_SATISFIABLE", &range);
        let content_range = format!("bytes */{size}");
        assert_eq!(reply.header("content-range"), Some(content_range.as_str()));
    }
}

#[test]
fn the_namespace_and_the_cluster_through_the_api() {
    let cluster = Cluster::start_default();
    let api = cluster.master_http_at(0);

    let reply = http_request(&api, "PUT", "/api/v1/dirs/docs", &[], &[]);
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.json()["kind"], "dir");
    for name in ["a.txt", "b.log", "c.txt", "d.txt", "e.log"] {
        let reply = put(&api, &format!("/api/v1/files/docs/{name}"), name.as_bytes());
        assert_eq!(reply.status, 201, "{name}: {}", reply.text());
    }
    // Replacing a file answers 200 and truncates it.
    let reply = put(&api, "/api/v1/files/docs/a.txt", b"new");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["size"], 3);
    assert_eq!(http_get(&api, "/api/v1/files/docs/a.txt").body, b"new");
    let empty = put(&api, "/api/v1/files/empty", b"");
    assert_eq!(empty.status, 201);
    let reply = http_get(&api, "/api/v1/files/empty");
    assert_eq!((reply.status, reply.body.len()), (200, 0));

    // Listing: pages, the name filter, the root in both spellings.
    let page = http_get(&api, "/api/v1/list/docs?limit=2").json();
    assert_eq!(names(&page), ["a.txt", "b.log"]);
    assert_eq!(page["next"], "b.log");
    assert_eq!(page["path"], "/docs");
    let page = http_get(&api, "/api/v1/list/docs?limit=2&after=b.log").json();
    assert_eq!(names(&page), ["c.txt", "d.txt"]);
    let page = http_get(&api, "/api/v1/list/docs?limit=2&after=d.txt").json();
    assert_eq!(names(&page), ["e.log"]);
    assert!(page["next"].is_null(), "{page}");
    let page = http_get(&api, "/api/v1/list/docs?name=.log").json();
    assert_eq!(names(&page), ["b.log", "e.log"]);
    assert!(page["next"].is_null());
    let page = http_get(&api, "/api/v1/list/docs?name=.txt&limit=1&after=a.txt").json();
    assert_eq!(names(&page), ["c.txt"]);
    assert_eq!(page["next"], "c.txt");
    let entry = &http_get(&api, "/api/v1/list/docs").json()["entries"][1];
    assert_eq!(entry["kind"], "file");
    assert_eq!(entry["size"], 5);
    assert_eq!(entry["mode"], 0o644);
    assert!(entry["mtime_ms"].as_u64().unwrap() > 0);
    for root in ["/api/v1/list", "/api/v1/list/"] {
        let reply = http_get(&api, root);
        assert_eq!(reply.status, 200, "{root}");
        assert_eq!(names(&reply.json()), ["docs", "empty"], "{root}");
    }

    let stat = http_get(&api, "/api/v1/stat/docs/b.log").json();
    assert_eq!(
        (stat["kind"].clone(), stat["size"].clone()),
        ("file".into(), 5.into())
    );
    assert_eq!(stat["nlink"], 1);
    assert!(stat["ino"].as_u64().unwrap() > 1);
    assert_eq!(http_get(&api, "/api/v1/stat/").json()["kind"], "dir");

    let chunks = http_get(&api, "/api/v1/chunks/docs/b.log").json();
    assert_eq!(chunks["size"], 5);
    let chunk = &chunks["chunks"][0];
    assert_eq!(chunk["index"], 0);
    assert_eq!(chunk["length"], 5);
    assert_eq!(chunk["replicas"].as_array().unwrap().len(), 3, "{chunks}");
    assert_eq!(chunk["replicas"][0]["state"], "active");

    // Rename and delete.
    let reply = http_request(
        &api,
        "POST",
        "/api/v1/rename",
        &[("Content-Type", "application/json")],
        br#"{"from": "/docs/b.log", "to": "/docs/renamed.log"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["path"], "/docs/renamed.log");
    assert_eq!(
        http_get(&api, "/api/v1/files/docs/renamed.log").body,
        b"b.log"
    );
    assert_eq!(http_get(&api, "/api/v1/stat/docs/b.log").status, 404);
    let reply = http_request(&api, "DELETE", "/api/v1/files/docs/renamed.log", &[], &[]);
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(http_get(&api, "/api/v1/stat/docs/renamed.log").status, 404);
    http_request(&api, "PUT", "/api/v1/dirs/gone", &[], &[]);
    let reply = http_request(&api, "DELETE", "/api/v1/dirs/gone", &[], &[]);
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(http_get(&api, "/api/v1/stat/gone").status, 404);

    // The cluster's reports.
    let fsck = http_get(&api, "/api/v1/fsck?path=/").json();
    assert_eq!(fsck["files"], 5, "{fsck}");
    assert_eq!(fsck["missing"], 0);
    assert_eq!(fsck["under_replicated"], 0);
    assert_eq!(fsck["damaged_files"].as_array().unwrap().len(), 0);
    assert_eq!(http_get(&api, "/api/v1/fsck?path=/docs").json()["files"], 4);

    let status = http_get(&api, "/api/v1/status").json();
    assert_eq!(status["servers"]["active"], 3, "{status}");
    assert_eq!(status["replication"], 3);
    assert!(status["capacity"]["total_bytes"].as_u64().unwrap() > 0);
    // Five files, the root and /docs.
    assert_eq!(status["inodes"], 7);
    assert_eq!(status["missing"], 0);
    assert_eq!(status["masters"]["leader"], 1);

    let servers = http_get(&api, "/api/v1/servers").json();
    let servers = servers.as_array().unwrap();
    assert_eq!(servers.len(), 3);
    for server in servers {
        assert_eq!(server["state"], "active", "{server}");
        assert!(
            server["address"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
        assert!(server["capacity_bytes"].as_u64().unwrap() > 0);
        assert!(server["last_heartbeat_ms"].is_u64());
    }

    let masters = http_get(&api, "/api/v1/masters").json();
    assert_eq!(masters["leader"], 1, "{masters}");
    assert_eq!(masters["members"][0]["role"], "leader");
    assert_eq!(masters["members"][0]["address"], cluster.master_addr_at(0));

    let address = servers[2]["address"].as_str().unwrap().to_string();
    let reply = http_request(
        &api,
        "POST",
        &format!("/api/v1/servers/{address}/decommission"),
        &[],
        &[],
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["state"], "draining");
    assert_eq!(reply.json()["address"], address);
    let reply = http_request(
        &api,
        "POST",
        "/api/v1/servers/9.9.9.9:1/decommission",
        &[],
        &[],
    );
    assert_error(&reply, 404, "ENOENT", "decommissioning an unknown server");

    // The OpenAPI document names every route.
    let doc = http_get(&api, "/api/v1/openapi.json").json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = &doc["paths"];
    for (route, method) in [
        ("/api/v1/health", "get"),
        ("/api/v1/status", "get"),
        ("/api/v1/servers", "get"),
        ("/api/v1/servers/{address}/decommission", "post"),
        ("/api/v1/masters", "get"),
        ("/api/v1/fsck", "get"),
        ("/api/v1/list/{path}", "get"),
        ("/api/v1/stat/{path}", "get"),
        ("/api/v1/chunks/{path}", "get"),
        ("/api/v1/files/{path}", "get"),
        ("/api/v1/files/{path}", "head"),
        ("/api/v1/files/{path}", "put"),
        ("/api/v1/files/{path}", "delete"),
        ("/api/v1/dirs/{path}", "put"),
        ("/api/v1/dirs/{path}", "delete"),
        ("/api/v1/rename", "post"),
        ("/api/v1/openapi.json", "get"),
    ] {
        assert!(paths[route][method].is_object(), "{method} {route} missing");
    }
}

/// The tree as the API lists it, recursively: `(path, size)` of every node.
fn tree(api: &str, dir: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let listing = http_get(api, &format!("/api/v1/list{dir}")).json();
    for entry in listing["entries"].as_array().unwrap() {
        let path = format!(
            "{}/{}",
            dir.trim_end_matches('/'),
            entry["name"].as_str().unwrap()
        );
        out.push((path.clone(), entry["size"].as_u64().unwrap()));
        if entry["kind"] == "dir" {
            out.extend(tree(api, &path));
        }
    }
    out
}

/// A cluster whose tree holds `/d/f` ("content"), made through the API at the address
/// returned with it.
fn cluster_with_a_file() -> (Cluster, String) {
    let cluster = Cluster::start_default();
    let api = cluster.master_http_at(0);
    assert_eq!(
        http_request(&api, "PUT", "/api/v1/dirs/d", &[], &[]).status,
        201
    );
    assert_eq!(put(&api, "/api/v1/files/d/f", b"content").status, 201);
    (cluster, api)
}

#[test]
fn every_refused_request_answers_its_status_in_json_and_changes_nothing() {
    let (_cluster, api) = cluster_with_a_file();
    let before = tree(&api, "/");

    assert_error(
        &http_get(&api, "/api/v1/stat/nothing"),
        404,
        "ENOENT",
        "stat",
    );
    assert_error(
        &http_get(&api, "/api/v1/files/nothing"),
        404,
        "ENOENT",
        "download",
    );
    assert_error(
        &http_get(&api, "/api/v1/list/nothing"),
        404,
        "ENOENT",
        "list",
    );
    assert_error(
        &http_get(&api, "/api/v1/chunks/nothing"),
        404,
        "ENOENT",
        "chunks",
    );
    assert_error(
        &put(&api, "/api/v1/files/nothing/f", b"x"),
        404,
        "ENOENT",
        "no parent",
    );
    assert_error(
        &put(&api, "/api/v1/files/d/f?exclusive=true", b"other"),
        409,
        "EEXIST",
        "exclusive create",
    );
    assert_error(
        &http_request(&api, "PUT", "/api/v1/dirs/d", &[], &[]),
        409,
        "EEXIST",
        "mkdir of an existing name",
    );
    assert_error(
        &http_request(&api, "DELETE", "/api/v1/dirs/d", &[], &[]),
        409,
        "ENOTEMPTY",
        "rmdir of a non-empty directory",
    );
    assert_error(
        &http_request(&api, "DELETE", "/api/v1/files/d", &[], &[]),
        409,
        "EISDIR",
        "unlink of a directory",
    );
    assert_error(
        &http_request(&api, "DELETE", "/api/v1/dirs/d/f", &[], &[]),
        409,
        "ENOTDIR",
        "rmdir of a file",
    );
    assert_error(
        &http_get(&api, "/api/v1/files/d"),
        409,
        "EISDIR",
        "download of a directory",
    );
    assert_error(
        &put(&api, "/api/v1/files/d", b"x"),
        409,
        "EISDIR",
        "upload over a directory",
    );
    assert_error(
        &http_get(&api, "/api/v1/list/d/f"),
        409,
        "ENOTDIR",
        "list of a file",
    );
    let long = format!("/api/v1/files/{}", "n".repeat(300));
    assert_error(&put(&api, &long, b"x"), 400, "ENAMETOOLONG", "a long name");

    // Bad paths: dots, encoded or not; relative paths in a body or query.
    for (method, path) in [
        ("PUT", "/api/v1/files/d/../d/f"),
        ("PUT", "/api/v1/files/d/%2e%2e/d/f"),
        ("PUT", "/api/v1/files/d/%00"),
        ("GET", "/api/v1/stat/./d"),
        ("PUT", "/api/v1/dirs/d/.."),
    ] {
        let reply = http_request(&api, method, path, &[], b"x");
        assert_error(&reply, 400, "EINVAL", path);
    }
    assert_error(
        &http_get(&api, "/api/v1/fsck?path=d"),
        400,
        "EINVAL",
        "relative fsck",
    );
    let json = [("Content-Type", "application/json")];
    let rename = |body: &[u8]| http_request(&api, "POST", "/api/v1/rename", &json, body);
    assert_error(
        &rename(br#"{"from": "d/f", "to": "/g"}"#),
        400,
        "EINVAL",
        "relative",
    );
    assert_error(
        &rename(br#"{"from": "/d/f", "#),
        400,
        "EINVAL",
        "malformed JSON",
    );
    assert_error(
        &rename(br#"{"from": "/d/f"}"#),
        400,
        "EINVAL",
        "a missing field",
    );
    assert_error(
        &rename(br#"{"from": "/x", "to": "/y"}"#),
        404,
        "ENOENT",
        "rename of nothing",
    );
    assert_error(
        &http_get(&api, "/api/v1/list/?limit=0"),
        400,
        "EINVAL",
        "limit 0",
    );
    assert_error(
        &http_get(&api, "/api/v1/list/?limit=x"),
        400,
        "EINVAL",
        "limit x",
    );

    // Routes and methods.
    assert_error(
        &http_get(&api, "/api/v1/no-such-route"),
        404,
        "NO_ROUTE",
        "route",
    );
    assert_error(
        &http_get(&api, "/api/v1/rename"),
        405,
        "METHOD_NOT_ALLOWED",
        "GET rename",
    );
    assert_error(
        &http_request(&api, "POST", "/api/v1/files/d/f", &[], b"x"),
        405,
        "METHOD_NOT_ALLOWED",
        "POST a file",
    );
    assert_error(
        &http_request(&api, "DELETE", "/api/v1/status", &[], &[]),
        405,
        "METHOD_NOT_ALLOWED",
        "DELETE status",
    );
    assert_error(
        &get_range(&api, "/api/v1/files/d/f", "bytes=7-"),
        416,
        "RANGE_NOT_SATISFIABLE",
        "range",
    );

    assert_eq!(
        tree(&api, "/"),
        before,
        "a refused request changed the tree"
    );
    assert_eq!(http_get(&api, "/api/v1/files/d/f").body, b"content");
}

#[test]
fn failed_and_abandoned_uploads_leave_no_lease_held() {
    let cluster = Cluster::start(ClusterOptions {
        chunk_size: 1 << 20,
        capacity_bytes: Some(4 << 20),
        ..ClusterOptions::default()
    });
    let api = cluster.master_http_at(0);
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.bin");
    fs::write(&big, pseudo_random_bytes(3, 16 << 20)).unwrap();
    let reply = work.path().join("reply.json");
    let url = format!("http://{api}/api/v1/files/big.bin");
    let status = curl(&[
        "-T",
        big.to_str().unwrap(),
        "-o",
        reply.to_str().unwrap(),
        &url,
    ]);
    let body: serde_json::Value = serde_json::from_slice(&fs::read(&reply).unwrap()).unwrap();
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "ENOSPC", "{body}");
    assert_eq!(body["error"]["status"], 507);
    // The refused upload left no writer lease held: a mount truncates the file at once.
    let mount = cluster.mount();
    fs::write(mount.join("big.bin"), b"").unwrap();
    let stat = http_get(&api, "/api/v1/stat/big.bin").json();
    assert_eq!(stat["size"], 0, "{stat}");
    let status = http_get(&api, "/api/v1/status").json();
    assert_eq!(
        status["capacity"]["total_bytes"],
        3 * (4u64 << 20),
        "{status}"
    );

    // An upload whose client goes away mid-body: the master releases the file, so a mount
    // opens it for writing without waiting out a lease.
    let mut upload = TcpStream::connect(&api).unwrap();
    let head =
        "PUT /api/v1/files/abandoned.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n";
    upload.write_all(head.as_bytes()).unwrap();
    upload.write_all(&[7u8; 64 << 10]).unwrap();
    wait_until(
        Duration::from_secs(10),
        "the upload to create its file",
        || http_get(&api, "/api/v1/stat/abandoned.bin").status == 200,
    );
    drop(upload);
    fs::write(mount.join("abandoned.bin"), b"").unwrap();
    assert_eq!(
        http_get(&api, "/api/v1/stat/abandoned.bin").json()["size"],
        0
    );
}

/// A path segment no filesystem allows, or that is not what it seems.
fn hostile_segment(rng: &mut dfs_proto::fuzz::Rng) -> String {
    match rng.below(5) {
        0 => "..".into(),
        1 => format!("a%00{}", rng.below(10)),
        2 => "a%2Fb".into(),
        3 => "n".repeat(256 + rng.index(50)),
        _ => "%ff%fe".into(),
    }
}

/// A body no handler takes: random bytes, or JSON cut short or of the wrong shape.
fn hostile_body(rng: &mut dfs_proto::fuzz::Rng) -> Vec<u8> {
    let valid = br#"{"from":"/d/none","to":"/d/other"}"#;
    match rng.below(5) {
        0 => {
            let len = rng.index(200);
            rng.bytes(len)
        }
        1 => valid[..rng.index(valid.len())].to_vec(),
        2 => br#"{"from":7,"to":[1,2]}"#.to_vec(),
        3 => br#"{"from":"/d/none"}"#.to_vec(),
        _ => format!(r#"{{"from":"/{}","to":"/x"}}"#, "y".repeat(300)).into_bytes(),
    }
}

#[test]
fn hostile_requests_get_a_clear_status_and_change_nothing() {
    let (_cluster, api) = cluster_with_a_file();
    let before = tree(&api, "/");

    let (mut rng, requests) = dfs_proto::fuzz::setup("http api", 400);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..requests {
        let segment = hostile_segment(&mut rng);
        let (method, path, body) = match rng.below(6) {
            0 => ("GET", format!("/api/v1/files/d/{segment}"), Vec::new()),
            1 => ("GET", format!("/api/v1/list/{segment}/x"), Vec::new()),
            2 => ("PUT", format!("/api/v1/dirs/d/{segment}"), Vec::new()),
            3 => (
                "PUT",
                format!("/api/v1/files/d/{segment}/f"),
                b"junk".to_vec(),
            ),
            4 => ("DELETE", format!("/api/v1/files/{segment}"), Vec::new()),
            _ => ("POST", "/api/v1/rename".to_string(), hostile_body(&mut rng)),
        };
        let range = format!("bytes={}-{}", rng.next_u64(), rng.below(10));
        let headers: &[(&str, &str)] = match rng.below(3) {
            0 => &[("Range", &range)],
            1 => &[("Content-Type", "application/json")],
            _ => &[],
        };
        let reply = http_request(&api, method, &path, headers, &body);
        let what = format!("{method} {path} {:?}", String::from_utf8_lossy(&body));
        // A refusal of the request, never the server failing: no 5xx.
        assert!(
            (400..500).contains(&reply.status) || reply.status == 200,
            "{what}: {} {}",
            reply.status,
            reply.text()
        );
        if reply.status >= 400 {
            let body = reply.json();
            assert_eq!(body["error"]["status"], reply.status, "{what}: {body}");
        }
        *statuses.entry(reply.status).or_default() += 1;
    }
    // The requests reached the handlers' checks, not only the router's.
    println!("answers by status: {statuses:?}");
    assert!(statuses.len() >= 2, "{statuses:?}");
    assert_eq!(tree(&api, "/"), before);
    let kept = http_get(&api, "/api/v1/files/d/f");
    assert_eq!(kept.body, b"content");
}
