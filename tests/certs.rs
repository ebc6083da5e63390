//! `dfs ca init` and `dfs cert issue`, checked by a tool the project did not write: OpenSSL
//! verifies each certificate against the cluster's CA (and refuses it against another CA),
//! and reads the role, host names and key usages back from it.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `dfs ARGS`.
fn dfs(args: &[&str]) -> Output {
    Command::new(dfs_tests::binary("dfs"))
        .args(args)
        .output()
        .expect("run dfs")
}

/// Runs `openssl ARGS`; its standard output, or the whole output on failure.
fn openssl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed by scripts/test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn issued_certificates_verify_against_their_ca_only_and_carry_their_role() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other_ca, certs) = (
        dir.path().join("ca"),
        dir.path().join("other"),
        dir.path().join("certs"),
    );
    let said = succeeded(&dfs(&["ca", "init", path(&ca)]));
    assert!(said.contains("ca.pem") && said.contains("ca.key"), "{said}");
    succeeded(&dfs(&["ca", "init", path(&other_ca)]));
    let ca_pem = ca.join("ca.pem");

    let issue = |role: &str, name: &str, hosts: &[&str]| {
        let mut args = vec!["cert", "issue", "--role", role, name];
        args.extend(["--ca", path(&ca), "--out", path(&certs)]);
        for host in hosts {
            args.extend(["--host", host]);
        }
        succeeded(&dfs(&args))
    };
    issue("master", "m1", &["master1.example", "10.0.0.1"]);
    issue("chunkserver", "cs1", &[]);
    issue("client", "alice", &[]);

    for (name, role, usages, hosts) in [
        (
            "m1",
            "master",
            "TLS Web Server Authentication",
            vec!["DNS:master1.example", "IP Address:10.0.0.1"],
        ),
        (
            "cs1",
            "chunkserver",
            "TLS Web Server Authentication",
            vec!["DNS:localhost", "IP Address:127.0.0.1"],
        ),
        ("alice", "client", "TLS Web Client Authentication", vec![]),
    ] {
        let cert = certs.join(format!("{name}.pem"));
        let verified = openssl(&["verify", "-CAfile", path(&ca_pem), path(&cert)]);
        assert_eq!(verified, Ok(format!("{}: OK\n", path(&cert))));
        let refused = openssl(&[
            "verify",
            "-CAfile",
            path(&other_ca.join("ca.pem")),
            path(&cert),
        ]);
        assert!(refused.is_err(), "another CA trusted {name}: {refused:?}");

        let text = openssl(&["x509", "-in", path(&cert), "-noout", "-text"]).unwrap();
        assert!(text.contains(&format!("URI:urn:dfs:role:{role}")), "{text}");
        assert!(text.contains(&format!("CN = {name}")), "{text}");
        assert!(text.contains(usages), "{name}: {text}");
        assert!(text.contains("CA:FALSE"), "{text}");
        for host in hosts {
            assert!(text.contains(host), "{name} lacks {host}: {text}");
        }
        if role == "client" {
            assert!(!text.contains("TLS Web Server Authentication"), "{text}");
            assert!(!text.contains("DNS:"), "{text}");
        }
        // The key is the certificate's, and private to its owner.
        let key = certs.join(format!("{name}.key"));
        let public_of_key = openssl(&["pkey", "-in", path(&key), "-pubout"]).unwrap();
        let public_of_cert = openssl(&["x509", "-in", path(&cert), "-noout", "-pubkey"]).unwrap();
        assert_eq!(public_of_key, public_of_cert);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}.key");
    }
}

#[test]
fn nothing_is_overwritten_and_bad_requests_fail_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    succeeded(&dfs(&["ca", "init", path(&ca)]));
    let key_before = std::fs::read(ca.join("ca.key")).unwrap();

    let again = dfs(&["ca", "init", path(&ca)]);
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("exists already"), "{stderr}");
    assert_eq!(std::fs::read(ca.join("ca.key")).unwrap(), key_before);

    let issue = |args: &[&str]| {
        let mut all = vec!["cert", "issue", "--ca", path(&ca)];
        all.extend(args);
        dfs(&all)
    };
    succeeded(&issue(&["--role", "client", "bob"]));
    let twice = issue(&["--role", "client", "bob"]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("bob.pem exists already"));

    let bad_role = issue(&["--role", "admin", "eve"]);
    assert_eq!(bad_role.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("master, chunkserver or client"));

    let client_host = issue(&["--role", "client", "carol", "--host", "example.org"]);
    assert_eq!(client_host.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&client_host.stderr).contains("names no hosts"));

    let no_ca = dfs(&[
        "cert",
        "issue",
        "--role",
        "client",
        "dave",
        "--ca",
        path(&dir.path().join("missing")),
    ]);
    assert_eq!(no_ca.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("No such file"));
    assert!(!ca.join("eve.pem").exists() && !ca.join("carol.pem").exists());
}
