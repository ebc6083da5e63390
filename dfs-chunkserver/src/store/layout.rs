//! The data directory on disk, below the replicas: the storage uuid, the scan that
//! rebuilds the replica index at startup (and removes what interrupted operations left),
//! and the file system's capacity.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::meta::{HEADER_LEN, Header};
use super::{Index, ReplicaInfo};
use crate::error::{Error, Result};

/// Name of the file holding the storage uuid, directly in the data directory.
const UUID_FILE: &str = "storage_uuid";

/// Removes `path`; returns whether it existed.
pub(super) fn remove_if_exists(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

/// Reads the storage uuid, or makes one from 128 random bits the first time.
pub(super) fn load_or_create_uuid(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(UUID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let uuid = text.trim();
            if uuid.len() != 32 || !uuid.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Config(format!(
                    "{} does not hold a 32-digit hex storage uuid",
                    path.display()
                )));
            }
            Ok(uuid.to_string())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let ctx = |what: &str| format!("{what} {}", path.display());
            let mut random = [0u8; 16];
            fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut random))
                .map_err(|e| Error::io("read /dev/urandom", e))?;
            let uuid: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let tmp = path.with_extension("tmp");
            let mut file = fs::File::create(&tmp).map_err(|e| Error::io(ctx("create"), e))?;
            writeln!(file, "{uuid}")
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(ctx("write"), e))?;
            fs::rename(&tmp, &path).map_err(|e| Error::io(ctx("rename to"), e))?;
            Ok(uuid)
        }
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// Indexes every replica under `chunks_dir` from the sidecar headers, and removes leftovers:
/// temporary sidecars, and data files whose sidecar was never written (a creation that
/// crashed). A sidecar that cannot be parsed is logged and left out of the index, so the
/// master re-replicates the chunk from elsewhere.
pub(super) fn scan(chunks_dir: &Path) -> Result<Index> {
    let ctx = |what: &str, path: &Path| format!("{what} {}", path.display());
    let mut index = Index::default();
    let subdirs = fs::read_dir(chunks_dir).map_err(|e| Error::io(ctx("list", chunks_dir), e))?;
    for subdir in subdirs {
        let subdir = subdir
            .map_err(|e| Error::io(ctx("list", chunks_dir), e))?
            .path();
        if !subdir.is_dir() {
            continue;
        }
        let entries = fs::read_dir(&subdir).map_err(|e| Error::io(ctx("list", &subdir), e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::io(ctx("list", &subdir), e))?
                .path();
            let Some(name) = path.file_name().map(|n| n.as_bytes()) else {
                continue;
            };
            if name.ends_with(b".meta.tmp") {
                remove_if_exists(&path)?;
            } else if let Some(chunk_id) = parse_name(name, b".meta") {
                match read_header(&path) {
                    Ok(header) => {
                        let info = ReplicaInfo {
                            chunk_id,
                            version: header.version,
                            length: header.length,
                        };
                        index.used_bytes += info.length;
                        index.replicas.insert(chunk_id, info);
                    }
                    Err(reason) => {
                        tracing::error!(chunk = %format!("{chunk_id:016x}"), %reason,
                            "unreadable replica sidecar; leaving the replica out of block reports");
                    }
                }
            } else if parse_name(name, b".data").is_some() && !path.with_extension("meta").exists()
            {
                tracing::warn!(path = %path.display(), "removing data file without sidecar");
                remove_if_exists(&path)?;
            }
        }
    }
    Ok(index)
}

/// `<16 hex digits><suffix>` → the chunk id.
fn parse_name(name: &[u8], suffix: &[u8]) -> Option<u64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(stem).ok()?, 16).ok()
}

fn read_header(path: &Path) -> std::result::Result<Header, String> {
    let mut file = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = [0u8; HEADER_LEN];
    file.read_exact(&mut bytes).map_err(|e| e.to_string())?;
    let header = Header::decode(&bytes)?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    // Longer is fine: entries of a growth whose header a crash cut off (see `replica`).
    if len < header.file_len() {
        return Err(format!(
            "sidecar is {len} bytes, its header needs {}",
            header.file_len()
        ));
    }
    Ok(header)
}

/// Total and available bytes of the file system holding `dir`.
pub(super) fn disk_space(dir: &Path) -> Result<(u64, u64)> {
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::Config(format!("data directory {} contains a NUL", dir.display())))?;
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a properly sized, writable
    // statvfs struct; statvfs(3) writes only into it.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(Error::io(
            format!("statvfs {}", dir.display()),
            io::Error::last_os_error(),
        ));
    }
    let frsize = stat.f_frsize as u64;
    Ok((stat.f_blocks as u64 * frsize, stat.f_bavail as u64 * frsize))
}
