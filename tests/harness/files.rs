//! System calls on files of a mount that std does not offer the way tests need them: dropping
//! the kernel's cached pages, so the next read reaches the FUSE daemon, and a `close` whose
//! result is seen (where a write-back filesystem reports a failed write).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::Path;

/// Drops the kernel's cached pages of the open `file`, so the next read reaches the daemon.
pub fn drop_pages(file: &File) {
    // SAFETY: a valid open descriptor; fadvise only drops clean cached pages.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise(DONTNEED)");
}

/// Drops the kernel's cached pages of the file at `path`.
pub fn drop_page_cache(path: &Path) {
    drop_pages(&File::open(path).unwrap_or_else(|err| panic!("open {path:?}: {err}")));
}

/// The file's bytes as the daemon serves them now (not the kernel's cached pages).
pub fn read_fresh(path: &Path) -> Vec<u8> {
    try_read_fresh(path).unwrap_or_else(|err| panic!("read {path:?}: {err}"))
}

/// [`read_fresh`] for a test that reports a failed open or read itself (with its own context)
/// instead of failing on the spot.
pub fn try_read_fresh(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    drop_pages(&file);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Closes `file` and returns what `close(2)` said (dropping a `File` ignores it).
pub fn close(file: File) -> io::Result<()> {
    let fd = file.into_raw_fd();
    // SAFETY: `fd` was just taken out of the `File`, so it is open and closed only here.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
