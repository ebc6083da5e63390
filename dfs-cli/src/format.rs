//! How the file commands print attributes: `ls -l` lines and `stat` reports in the layout of
//! GNU coreutils in the C locale, so scripts written against those read them alike.

use std::ffi::CStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dfs_client::{Attr, FileKind};

/// Half a Gregorian year: a time older than this (or in the future) shows its year instead of
/// its hour in `ls -l`, as GNU `ls` does.
const SIX_MONTHS: Duration = Duration::from_secs(31_556_952 / 2);

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The `ls -l` mode column: type letter and the nine permission letters with setuid,
/// setgid and sticky folded in.
pub fn mode_string(attr: &Attr) -> String {
    let kind = match attr.kind {
        FileKind::Regular => '-',
        FileKind::Directory => 'd',
        FileKind::Symlink => 'l',
        FileKind::Fifo => 'p',
        FileKind::CharDevice => 'c',
        FileKind::BlockDevice => 'b',
        FileKind::Socket => 's',
    };
    let perm = u32::from(attr.perm);
    let bit = |mask: u32, letter: char| if perm & mask != 0 { letter } else { '-' };
    // The execute letter of a class, with its special bit (setuid, setgid, sticky).
    let exec = |mask: u32, special: u32, set: char, unset: char| match (
        perm & mask != 0,
        perm & special != 0,
    ) {
        (true, true) => set,
        (false, true) => unset,
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't', 'T'),
    ]
    .into_iter()
    .collect()
}

/// The name of user `uid`, or the number when it has none here.
pub fn user_name(uid: u32) -> String {
    // SAFETY: getpwuid returns null or a pointer to a static record, read at once; the
    // command is single-threaded.
    unsafe {
        let pw = libc::getpwuid(uid);
        if pw.is_null() {
            uid.to_string()
        } else {
            CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned()
        }
    }
}

/// The name of group `gid`, or the number when it has none here.
pub fn group_name(gid: u32) -> String {
    // SAFETY: as in `user_name`.
    unsafe {
        let gr = libc::getgrgid(gid);
        if gr.is_null() {
            gid.to_string()
        } else {
            CStr::from_ptr((*gr).gr_name).to_string_lossy().into_owned()
        }
    }
}

/// Broken-down local time of `t`, with its offset from UTC in seconds.
struct LocalTime {
    tm: libc::tm,
    nanos: u32,
}

fn local_time(t: SystemTime) -> LocalTime {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as libc::time_t, d.subsec_nanos()),
        Err(before) => (-(before.duration().as_secs() as libc::time_t), 0),
    };
    // SAFETY: localtime_r writes into the zeroed `tm` it is given and reads only `secs`.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    };
    LocalTime { tm, nanos }
}

/// `ls -l`'s time column: month, day and time for recent times, month, day and year for
/// the others.
pub fn ls_time(t: SystemTime, now: SystemTime) -> String {
    let LocalTime { tm, .. } = local_time(t);
    let month = MONTHS[tm.tm_mon.clamp(0, 11) as usize];
    let recent = t <= now && now.duration_since(t).is_ok_and(|age| age < SIX_MONTHS);
    if recent {
        format!(
            "{month} {:>2} {:02}:{:02}",
            tm.tm_mday, tm.tm_hour, tm.tm_min
        )
    } else {
        format!("{month} {:>2}  {}", tm.tm_mday, tm.tm_year + 1900)
    }
}

/// `stat`'s time lines: `2026-12-05 23:33:36.123456789 +0000`.
pub fn stat_time(t: SystemTime) -> String {
    let LocalTime { tm, nanos } = local_time(t);
    let offset = tm.tm_gmtoff / 60;
    let sign = if offset < 0 { '-' } else { '+' };
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}.{nanos:09} {sign}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        offset.abs() / 60,
        offset.abs() % 60
    )
}

/// Column widths of an `ls -l` listing, from all of its entries.
#[derive(Debug, Default)]
pub struct Columns {
    links: usize,
    owner: usize,
    group: usize,
    size: usize,
    now: Option<SystemTime>,
}

impl Columns {
    /// The widths that fit every entry in `attrs`.
    pub fn of<'a>(attrs: impl Iterator<Item = &'a Attr>) -> Columns {
        let mut columns = Columns {
            now: Some(SystemTime::now()),
            ..Columns::default()
        };
        for attr in attrs {
            columns.links = columns.links.max(attr.nlink.to_string().len());
            columns.owner = columns.owner.max(user_name(attr.uid).len());
            columns.group = columns.group.max(group_name(attr.gid).len());
            columns.size = columns.size.max(attr.size.to_string().len());
        }
        columns
    }
}

/// One `ls -l` line: mode, links, owner, group, size, time, name (and ` -> target` for a
/// symlink).
pub fn long_line(columns: &Columns, attr: &Attr, name: &[u8], target: Option<&[u8]>) -> Vec<u8> {
    let now = columns.now.unwrap_or_else(SystemTime::now);
    let mut line = format!(
        "{} {:>links$} {:<owner$} {:<group$} {:>size$} {} ",
        mode_string(attr),
        attr.nlink,
        user_name(attr.uid),
        group_name(attr.gid),
        attr.size,
        ls_time(attr.mtime, now),
        links = columns.links,
        owner = columns.owner,
        group = columns.group,
        size = columns.size,
    )
    .into_bytes();
    line.extend_from_slice(name);
    if let Some(target) = target {
        line.extend_from_slice(b" -> ");
        line.extend_from_slice(target);
    }
    line
}

/// `stat`'s file type words.
fn type_words(attr: &Attr) -> &'static str {
    match attr.kind {
        FileKind::Regular if attr.size == 0 => "regular empty file",
        FileKind::Regular => "regular file",
        FileKind::Directory => "directory",
        FileKind::Symlink => "symbolic link",
        FileKind::Fifo => "fifo",
        FileKind::CharDevice => "character special file",
        FileKind::BlockDevice => "block special file",
        FileKind::Socket => "socket",
    }
}

/// The `stat PATH` report, in GNU `stat`'s default layout (the device is the cluster, which
/// has no device number: 0,0).
pub fn stat_report(path: &str, attr: &Attr, target: Option<&[u8]>) -> String {
    let file = match target {
        Some(target) => format!("'{path}' -> '{}'", String::from_utf8_lossy(target)),
        None => path.to_string(),
    };
    let io_block = dfs_client::PREFERRED_IO_SIZE;
    let mut out = format!("  File: {file}\n");
    out += &format!(
        "  Size: {:<10}\tBlocks: {:<10} IO Block: {io_block:<6} {}\n",
        attr.size,
        attr.blocks(),
        type_words(attr)
    );
    out += &format!(
        "Device: 0,0\tInode: {:<11} Links: {}\n",
        attr.ino, attr.nlink
    );
    out += &format!(
        "Access: ({:04o}/{})  Uid: ({:>5}/{:>8})   Gid: ({:>5}/{:>8})\n",
        attr.perm,
        mode_string(attr),
        attr.uid,
        user_name(attr.uid),
        attr.gid,
        group_name(attr.gid)
    );
    out += &format!("Access: {}\n", stat_time(attr.atime));
    out += &format!("Modify: {}\n", stat_time(attr.mtime));
    out += &format!("Change: {}\n", stat_time(attr.ctime));
    out += &format!(" Birth: {}\n", stat_time(attr.crtime));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: FileKind, perm: u16) -> Attr {
        Attr {
            ino: 7,
            kind,
            perm,
            size: 5,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
        }
    }

    #[test]
    fn modes_read_as_ls_shows_them() {
        assert_eq!(mode_string(&attr(FileKind::Regular, 0o644)), "-rw-r--r--");
        assert_eq!(
            mode_string(&attr(FileKind::Directory, 0o1777)),
            "drwxrwxrwt"
        );
        assert_eq!(mode_string(&attr(FileKind::Regular, 0o4644)), "-rwSr--r--");
        assert_eq!(mode_string(&attr(FileKind::Regular, 0o6755)), "-rwsr-sr-x");
        assert_eq!(mode_string(&attr(FileKind::Symlink, 0o777)), "lrwxrwxrwx");
        assert_eq!(
            mode_string(&attr(FileKind::Directory, 0o1754)),
            "drwxr-xr-T"
        );
    }

    #[test]
    fn old_times_show_the_year_and_recent_ones_the_hour() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let old = now - Duration::from_secs(365 * 86_400);
        assert!(
            ls_time(old, now).ends_with(&format!(" {}", 2026)),
            "{}",
            ls_time(old, now)
        );
        let recent = now - Duration::from_secs(60);
        assert!(
            ls_time(recent, now).contains(':'),
            "{}",
            ls_time(recent, now)
        );
        let future = now + Duration::from_secs(3600);
        assert!(!ls_time(future, now).contains(':'));
    }

    #[test]
    fn stat_reports_type_size_and_mode() {
        let report = stat_report("/a", &attr(FileKind::Regular, 0o640), None);
        assert!(report.starts_with("  File: /a\n  Size: 5 "), "{report}");
        assert!(report.contains("regular file\n"), "{report}");
        assert!(report.contains("Access: (0640/-rw-r-----)"), "{report}");
        let empty = Attr {
            size: 0,
            ..attr(FileKind::Regular, 0o600)
        };
        assert!(stat_report("/e", &empty, None).contains("regular empty file"));
    }
}
