//! The model a fault test keeps of what applications were told succeeded, and the check of that
//! model against what a mount serves once the faults are over.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crate::{errno, try_read_fresh};

/// What a writer was told succeeded, by file name: the bytes it must hold, or `None` if it
/// must be gone.
pub type Acknowledged = BTreeMap<String, Option<Vec<u8>>>;

/// Every way directory `dir`, as a mount serves it now, differs from `acknowledged` (one line
/// each): a file acknowledged with bytes that is missing or holds other bytes, a file
/// acknowledged as gone that is still there, and a name that no acknowledged operation made.
/// The last holds only when every operation in `dir` was acknowledged or recorded as gone.
pub fn differences(dir: &Path, acknowledged: &Acknowledged) -> Vec<String> {
    let mut found = Vec::new();
    for (name, expected) in acknowledged {
        let path = dir.join(name);
        match (expected, try_read_fresh(&path)) {
            (Some(bytes), Ok(read)) if read == *bytes => {}
            (Some(bytes), Ok(read)) => found.push(format!(
                "{name}: holds {} bytes, not the {} acknowledged{}",
                read.len(),
                bytes.len(),
                first_difference(bytes, &read)
                    .map(|at| format!(" (first difference at byte {at})"))
                    .unwrap_or_default()
            )),
            (Some(_), Err(err)) => {
                found.push(format!("{name}: acknowledged, but reading it fails: {err}"))
            }
            (None, _) => {
                let gone = fs::symlink_metadata(&path).map_err(|e| errno(&e)).err();
                if gone != Some(libc::ENOENT) {
                    found.push(format!(
                        "{name}: acknowledged as gone, but stat says {gone:?} (not ENOENT)"
                    ));
                }
            }
        }
    }
    let listed: BTreeSet<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|err| {
                found.push(format!("listing {}: {err}", dir.display()));
                BTreeSet::new()
            }),
        Err(err) => {
            found.push(format!("listing {}: {err}", dir.display()));
            BTreeSet::new()
        }
    };
    for name in listed {
        if !acknowledged.contains_key(&name) {
            found.push(format!(
                "{name}: listed, but no acknowledged operation made it"
            ));
        }
    }
    found
}

/// Fails the test, listing every difference, unless `dir` holds exactly what `acknowledged`
/// says.
pub fn check_acknowledged(dir: &Path, acknowledged: &Acknowledged) {
    let found = differences(dir, acknowledged);
    assert!(
        found.is_empty(),
        "{} differs from what was acknowledged:\n{}",
        dir.display(),
        found.join("\n")
    );
}

/// Where `a` and `b` first differ: the first unequal byte, else the end of the shorter one;
/// `None` if they are equal.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then_some(a.len().min(b.len())))
}
