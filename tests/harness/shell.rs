//! Running shell commands in a test directory and asserting on system call errors.

use std::io;
use std::path::Path;
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

/// The errno of an I/O error, for asserting on it.
pub fn errno(err: &io::Error) -> i32 {
    err.raw_os_error()
        .unwrap_or_else(|| panic!("not an OS error: {err:?}"))
}
