//! The systemd units in `packaging/systemd/` pass `systemd-analyze verify`, and the sample
//! settings in `packaging/*.env` name every option of the servers, so a new flag cannot be
//! left out of them.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use dfs_tests::{assert_success, binary, repo_path};

#[test]
fn systemd_analyze_verify_accepts_every_unit() {
    let units = repo_path("packaging").join("systemd");
    let tmp = tempfile::tempdir().expect("tempdir");
    // `verify` insists that ExecStart's binary exists: the copies run the built ones.
    let bin_dir = binary("dfs-master")
        .parent()
        .expect("build directory")
        .display()
        .to_string();
    let mut names = BTreeSet::new();
    let mut paths = Vec::new();
    for entry in fs::read_dir(&units)
        .expect("read packaging/systemd")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = fs::read_to_string(entry.path()).expect("read unit");
        let text = text.replace("/usr/local/bin/", &format!("{bin_dir}/"));
        if name.ends_with(".service") {
            let exec = text
                .lines()
                .find_map(|l| l.strip_prefix("ExecStart="))
                .unwrap_or_else(|| panic!("{name} has no ExecStart="));
            let program = exec.split_whitespace().next().expect("a program");
            assert!(
                Path::new(program).exists(),
                "{name} runs {program}, which is not a dfs binary in /usr/local/bin"
            );
        }
        let path = tmp.path().join(&name);
        fs::write(&path, text).expect("write unit copy");
        names.insert(name);
        paths.push(path);
    }
    assert_eq!(
        names,
        BTreeSet::from(
            [
                "dfs-chunkserver.service",
                "dfs-master.service",
                "mnt-dfs.mount"
            ]
            .map(String::from)
        )
    );

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .current_dir(tmp.path())
        .output()
        .expect("run systemd-analyze (Debian package systemd)");
    assert_success("systemd-analyze verify", &out);
    // Unknown keys and bad values are only warnings: none may name our units.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tmp_path = tmp.path().display().to_string();
    let complaints: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(&tmp_path) || names.iter().any(|n| line.contains(n.as_str())))
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify warns about the units:\n{}",
        complaints.join("\n")
    );
}

/// The `[env: NAME=` variables of a binary's `--help`.
fn env_vars_in_help(bin: &str) -> BTreeSet<String> {
    let out = Command::new(binary(bin))
        .arg("--help")
        .output()
        .expect("run --help");
    assert_success(&format!("{bin} --help"), &out);
    let help = String::from_utf8_lossy(&out.stdout);
    help.split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split('=').next())
        .map(String::from)
        .collect()
}

#[test]
fn the_sample_settings_name_every_option_of_the_servers() {
    for (bin, sample) in [
        ("dfs-master", "master.env"),
        ("dfs-chunkserver", "chunkserver.env"),
    ] {
        let text = fs::read_to_string(repo_path("packaging").join(sample)).expect("read sample");
        // Settings, commented out or not: `#NAME=value` or `NAME=value`.
        let named: BTreeSet<String> = text
            .lines()
            .map(|l| l.trim_start_matches('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(name, _)| name)
            .filter(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .filter(|name| *name != "RUST_LOG")
            .map(String::from)
            .collect();
        assert_eq!(
            named,
            env_vars_in_help(bin),
            "packaging/{sample} and `{bin} --help` disagree"
        );
    }
}
