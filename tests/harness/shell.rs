//! Running shell commands in a test directory and asserting on system call errors.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `script` with `sh -c` in `dir`, asserting that it succeeds; returns its stdout.
pub fn sh(dir: &Path, script: &str) -> String {
    let out = sh_output(dir, script);
    assert!(
        out.status.success(),
        "`{script}` failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` with `sh -c` in `dir` and returns its output, whatever the exit status.
pub fn sh_output(dir: &Path, script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("run sh")
}

/// Asserts that `result` failed with errno `want` (`what` names the call in the message).
pub fn expect_errno<T: std::fmt::Debug>(result: io::Result<T>, want: i32, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected errno {want}, got Ok({v:?})"),
        Err(e) => assert_eq!(errno(&e), want, "{what}: {e}"),
    }
}

/// The errno of an I/O error, for asserting on it.
pub fn errno(err: &io::Error) -> i32 {
    err.raw_os_error()
        .unwrap_or_else(|| panic!("not an OS error: {err:?}"))
}

/// A command's exit status and both outputs, for failure messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that a command (`what`) succeeded, showing its output if not.
pub fn assert_success(what: &str, out: &Output) {
    assert!(out.status.success(), "{what} failed: {}", output_text(out));
}

/// A path in this repository (`packaging`, `scripts/dfs-up`, …).
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository holds tests/")
        .join(rel)
}
