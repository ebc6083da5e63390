//! `dfs-cli`: the `dfs` command — files in a cluster without a mount, and the operator's view
//! of the cluster — built on the client library ([`dfs_client`]).
//!
//! * File commands ([`files`], [`transfer`]): `ls [-l] [-R]`, `stat`, `mkdir [-p]`,
//!   `rm [-r] [-f]`, `rmdir`, `mv`, `cat`, and `put`/`get [-r]` to copy files and trees in
//!   and out, with the errors and exit codes of their coreutils namesakes.
//! * Admin commands: `dfs status` — every chunkserver with its state (active, stale, dead,
//!   draining), capacity and replica count, and the cluster's under-replicated and missing
//!   chunks; `dfs info PATH` — a file's chunks, versions, replicas and their health;
//!   `dfs fsck [PATH]` — replication health of a subtree ([`fsck`]); exits 1 if a chunk is
//!   damaged; `dfs decommission SERVER` — start draining a server (by id or address);
//!   `dfs backup DEST` — a consistent copy of the metadata, on the master's machine;
//!   `dfs masters` — the group of masters, and adding, removing or handing over the
//!   leadership ([`masters`]).
//! * `dfs stats --http ADDR`: a live view of a mount, a master or a chunkserver, one line per
//!   second, from its `/metrics` ([`stats`]).
//! * `dfs ca init DIR` and `dfs cert issue --role ROLE NAME`: the cluster's certificate
//!   authority and the certificates of its masters, chunkservers and clients ([`certs`]).
//!
//! Paths are absolute from the filesystem's root, not from a mount (a relative path is taken
//! from the root too). Reports print one `key: value` per line for the summary, so scripts
//! (and the tests) can read them; [`mod@format`] lays out `ls -l` and `stat` as coreutils does.

pub mod certs;
pub mod files;
pub mod format;
pub mod fsck;
pub mod masters;
pub mod stats;
pub mod transfer;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use dfs_client::{Client, MasterClient};
use dfs_proto::FsError;
use dfs_proto::pb::{self, ServerState};

/// Timeout of every call to the master or a chunkserver: longer than a mount's, since a
/// command copying a large file is not an application waiting on a `read`.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of the `dfs` command.
#[derive(Debug, clap::Parser)]
#[command(name = "dfs", version, about = "Use and administer a dfs cluster")]
pub struct Cli {
    /// Addresses of the masters, separated by commas (`host:port` or `http://host:port`
    /// each); calls go to their leader.
    #[arg(
        long,
        env = "DFS_MASTER",
        default_value = "127.0.0.1:9400",
        global = true
    )]
    pub master: String,

    /// The cluster's CA and this client's certificate, when the masters require mutual TLS
    /// (`DFS_TLS_CA`, `DFS_TLS_CERT`, `DFS_TLS_KEY`).
    #[command(flatten)]
    pub tls: dfs_proto::tls::TlsOptions,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List directory contents (one name per line), or name the files given.
    Ls {
        /// Long format: mode, links, owner, group, size, modification time, name.
        #[arg(short = 'l')]
        long: bool,
        /// List subdirectories recursively.
        #[arg(short = 'R')]
        recursive: bool,
        /// Paths in the cluster (default: the root).
        #[arg(default_value = "/")]
        paths: Vec<String>,
    },
    /// Show the attributes of files, as `stat` does.
    Stat {
        /// Paths in the cluster.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Create directories.
    Mkdir {
        /// Create missing parents too; an existing directory is no error.
        #[arg(short = 'p')]
        parents: bool,
        /// Paths in the cluster.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove files (and with -r, directories and their contents).
    Rm {
        /// Remove directories and their contents.
        #[arg(short = 'r', short_alias = 'R')]
        recursive: bool,
        /// Ignore names that do not exist.
        #[arg(short = 'f')]
        force: bool,
        /// Paths in the cluster.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove empty directories.
    Rmdir {
        /// Paths in the cluster.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Rename SRC to DST, or move it into DST if that is a directory.
    Mv {
        /// The path to move.
        src: String,
        /// The new path, or an existing directory to move into.
        dst: String,
    },
    /// Write files' contents to standard output.
    Cat {
        /// Paths in the cluster.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Copy a local file (or with -r, a tree) into the cluster, synced on every replica.
    Put {
        /// Copy directories recursively.
        #[arg(short = 'r', short_alias = 'R')]
        recursive: bool,
        /// The local file or directory.
        local: PathBuf,
        /// Path in the cluster; an existing directory receives LOCAL under its own name.
        path: String,
    },
    /// Copy a file (or with -r, a tree) out of the cluster.
    Get {
        /// Copy directories recursively.
        #[arg(short = 'r', short_alias = 'R')]
        recursive: bool,
        /// Path in the cluster.
        path: String,
        /// The local file or directory; an existing directory receives PATH under its name.
        local: PathBuf,
    },
    /// Servers, their states and capacity; under-replicated and missing chunk counts.
    Status,
    /// A file's chunks, versions, replicas and their health.
    Info {
        /// Path of the file, relative to the filesystem root.
        path: String,
    },
    /// Replication health of every file under PATH (default: the whole filesystem).
    Fsck {
        /// Path of a directory or file, relative to the filesystem root.
        #[arg(default_value = "/")]
        path: String,
    },
    /// Drain a chunkserver: its replicas are copied elsewhere, then it can be stopped.
    Decommission {
        /// The server's id or `host:port` address, as `dfs status` lists it.
        server: String,
    },
    /// Write a consistent copy of the metadata while the cluster serves (start a master from
    /// it with `dfs-master --restore DEST`).
    Backup {
        /// A directory on the master's machine that does not exist yet.
        dest: String,
    },
    /// The group of masters: each member's role, term and log; or change the group.
    Masters {
        /// What to change (nothing: list the members).
        #[command(subcommand)]
        action: Option<masters::MastersCommand>,
    },
    /// A live view of a mount, a master or a chunkserver: operations, throughput, latency
    /// percentiles (and a mount's cache hit rate) per second, from its HTTP metrics.
    Stats {
        /// The process's HTTP address (`--http-listen`; `dfs-up` writes each to
        /// `run/NAME.http` in its state directory).
        #[arg(long, env = "DFS_HTTP")]
        http: String,
        /// Seconds between two lines.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Lines to print before exiting (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// The cluster's certificate authority.
    Ca {
        #[command(subcommand)]
        action: CaCommand,
    },
    /// Certificates of masters, chunkservers and clients, signed by the cluster's CA.
    Cert {
        #[command(subcommand)]
        action: CertCommand,
    },
}

/// `dfs ca ...`
#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Make a new CA: DIR/ca.pem (give it to every process) and DIR/ca.key (keep it
    /// private; it signs certificates). Nothing that exists is overwritten.
    Init {
        /// Directory of the CA (created if missing, readable by its owner only).
        #[arg(env = "DFS_CA_DIR")]
        dir: PathBuf,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
}

/// `dfs cert ...`
#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Issue a certificate: OUT/NAME.pem and OUT/NAME.key, naming NAME and its role.
    Issue {
        /// What the holder may do: master, chunkserver or client.
        #[arg(long)]
        role: dfs_proto::tls::Role,
        /// The holder's name (the certificate's common name, and the files' names).
        name: String,
        /// Directory of the CA (`dfs ca init`).
        #[arg(long = "ca", env = "DFS_CA_DIR")]
        ca_dir: PathBuf,
        /// Where to write the certificate and key (default: the CA's directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A host name or IP address a master or chunkserver is reached at (repeat for
        /// more; default: localhost and 127.0.0.1).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// A client that may only read: the masters refuse its changes (EROFS) and its
        /// chunk tokens allow reading only.
        #[arg(long)]
        read_only: bool,
    },
}

/// What made an admin command fail: the master could not be reached, or refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client could not start (bad address, master unreachable).
    #[error("{0}")]
    Client(#[from] dfs_client::Error),
    /// The master (or a chunkserver) refused or failed the request.
    #[error("{0}")]
    Master(#[from] FsError),
    /// `dfs stats` could not read the process's metrics.
    #[error("{0}")]
    Stats(#[from] stats::StatsError),
    /// `dfs ca` or `dfs cert` could not make what was asked.
    #[error("{0}")]
    Cert(#[from] certs::CertError),
    /// The TLS certificates given cannot be used.
    #[error("{0}")]
    Tls(#[from] dfs_proto::tls::TlsError),
}

/// The failures of a file command so far, reported on standard error as they happen, in
/// coreutils' words: `dfs ls: cannot access '/x': No such file or directory`.
#[derive(Debug)]
#[must_use]
pub struct Failures {
    command: &'static str,
    /// The exit code: 0, 1 after a failure, 2 after a serious one (`ls`).
    code: u8,
}

impl Failures {
    /// No failures yet, for `command`.
    pub fn new(command: &'static str) -> Failures {
        Failures { command, code: 0 }
    }

    /// The exit code the failures call for.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// Reports a failure to do `what`.
    pub fn fail(&mut self, what: String, err: &FsError) {
        self.message(format!("{what}: {}", describe(err)));
    }

    /// Reports a failure on this machine's side (a local file).
    pub fn local(&mut self, what: String, err: &std::io::Error) {
        let text = match err.raw_os_error() {
            Some(errno) => strerror(errno),
            None => err.to_string(),
        };
        self.message(format!("{what}: {text}"));
    }

    /// Reports a failure that is no error of a call (a usage rule, as `-r` missing).
    pub fn message(&mut self, text: String) {
        eprintln!("dfs {}: {text}", self.command);
        self.code = self.code.max(1);
    }

    /// Reports a failure GNU `ls` counts as serious (exit 2): an operand it cannot reach.
    pub fn serious(&mut self, what: String, err: &FsError) {
        self.fail(what, err);
        self.code = 2;
    }
}

/// The C library's text for `errno`, as coreutils prints it.
fn strerror(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated string that stays valid until
    // the next call; it is copied at once, and the command is single-threaded.
    unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

/// An error as coreutils words it (`No such file or directory`), with the cluster's detail
/// where the errno alone says little (`Input/output error (master unreachable ...)`).
fn describe(err: &FsError) -> String {
    let text = strerror(err.errno());
    match err {
        FsError::Invalid(detail)
        | FsError::Stale(detail)
        | FsError::Corrupt(detail)
        | FsError::Unavailable(detail)
        | FsError::Io(detail) => format!("{text} ({detail})"),
        _ => text,
    }
}

/// A name in a message, quoted as coreutils quotes it in the C locale.
pub fn quote(name: &str) -> String {
    format!("'{name}'")
}

/// Runs one command; returns the process exit code. File commands report their failures on
/// standard error as they go; an admin command's failure is its error.
pub async fn run(cli: Cli) -> Result<u8, Error> {
    if let Command::Stats {
        http,
        interval,
        count,
    } = cli.command
    {
        // Needs no master: the metrics come from the process itself.
        let options = stats::StatsOptions {
            addr: http,
            interval: Duration::from_secs_f64(interval.clamp(0.1, 3600.0)),
            count,
        };
        stats::run(&options, &mut std::io::stdout().lock()).await?;
        return Ok(0);
    }
    match cli.command {
        Command::Ca {
            action: CaCommand::Init { dir, days },
        } => {
            let written = certs::init_ca(&dir, days)?;
            println!(
                "CA written: {} (trust it everywhere) and {} (keep it private); valid until {}",
                written.cert.display(),
                written.key.display(),
                written.not_after.date()
            );
            return Ok(0);
        }
        Command::Cert {
            action:
                CertCommand::Issue {
                    role,
                    name,
                    ca_dir,
                    out,
                    mut hosts,
                    days,
                    read_only,
                },
        } => {
            if hosts.is_empty() && role.serves() {
                hosts = vec!["localhost".into(), "127.0.0.1".into()];
            }
            let request = certs::IssueRequest {
                role,
                name,
                hosts,
                days,
                read_only,
            };
            let out = out.unwrap_or_else(|| ca_dir.clone());
            let written = certs::issue(&ca_dir, &out, &request)?;
            println!(
                "{} certificate written: {} and {}; valid until {}",
                request.role,
                written.cert.display(),
                written.key.display(),
                written.not_after.date()
            );
            return Ok(0);
        }
        _ => {}
    }
    if let Command::Masters { action } = cli.command {
        // Not through `Client::connect`, which needs a leader: any member lists the group.
        let master = MasterClient::with_tls(&cli.master, RPC_TIMEOUT, cli.tls.load_client()?)?;
        let text = masters::run(&master, action).await?;
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        return Ok(0);
    }
    let mut config = dfs_client::Config::new(cli.master.clone());
    config.rpc_timeout_ms = RPC_TIMEOUT.as_millis() as u64;
    config.tls = cli.tls.clone();
    let client = Client::connect(&config).await?;
    let mut out = std::io::stdout().lock();
    let failures = match cli.command {
        Command::Ls {
            long,
            recursive,
            paths,
        } => {
            let options = files::LsOptions { long, recursive };
            files::ls(&client, &paths, options, &mut out).await
        }
        Command::Stat { paths } => files::stat(&client, &paths, &mut out).await,
        Command::Mkdir { parents, paths } => files::mkdir(&client, &paths, parents).await,
        Command::Rm {
            recursive,
            force,
            paths,
        } => {
            let options = files::RmOptions { recursive, force };
            files::rm(&client, &paths, options).await
        }
        Command::Rmdir { paths } => files::rmdir(&client, &paths).await,
        Command::Mv { src, dst } => files::mv(&client, &src, &dst).await,
        Command::Cat { paths } => files::cat(&client, &paths, &mut out).await,
        Command::Put {
            recursive,
            local,
            path,
        } => transfer::put(&client, &local, &path, recursive, &mut out).await,
        Command::Get {
            recursive,
            path,
            local,
        } => transfer::get(&client, &path, &local, recursive, &mut out).await,
        admin => {
            let (text, code) = run_admin(&client, admin).await?;
            let _ = out.write_all(text.as_bytes());
            return Ok(code);
        }
    };
    let _ = out.flush();
    // Lease releases and atime marks wait a few milliseconds to go in batches; this
    // process is about to exit, so they go now.
    client.flush_all().await;
    Ok(failures.code())
}

/// Runs an admin command: its report and exit code.
async fn run_admin(client: &Client, command: Command) -> Result<(String, u8), Error> {
    let master = client.master();
    match command {
        Command::Status => Ok((format_status(&master.cluster_status().await?), 0)),
        Command::Info { path } => Ok((format_info(&path, &master.file_info(&path).await?), 0)),
        Command::Fsck { path } => {
            let reply = fsck::walk(master, &path).await?;
            let damaged = reply.under_replicated + reply.missing > 0;
            Ok((format_fsck(&path, &reply), u8::from(damaged)))
        }
        Command::Decommission { server } => {
            let reply = master.decommission(&server).await?;
            let text = format!(
                "server {} ({}) is {}\n",
                reply.server_id,
                reply.addr,
                state_name(reply.state)
            );
            Ok((text, 0))
        }
        Command::Backup { dest } => {
            let reply = master.backup(&dest).await?;
            let text = format!("metadata backup: {} ({} bytes)\n", reply.dest, reply.bytes);
            Ok((text, 0))
        }
        other => unreachable!("{other:?} is a file command"),
    }
}

/// The name of a server state as the CLI prints it.
pub fn state_name(state: i32) -> &'static str {
    match ServerState::try_from(state).unwrap_or(ServerState::Unspecified) {
        ServerState::Active => "active",
        ServerState::Stale => "stale",
        ServerState::Dead => "dead",
        ServerState::Draining => "draining",
        ServerState::Unspecified => "unknown",
    }
}

/// Bytes in binary units, e.g. `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The `dfs status` report.
pub fn format_status(status: &pb::ClusterStatusReply) -> String {
    let count = |state: ServerState| {
        status
            .servers
            .iter()
            .filter(|s| s.state == state as i32)
            .count()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "servers: {} ({} active, {} stale, {} dead, {} draining)",
        status.servers.len(),
        count(ServerState::Active),
        count(ServerState::Stale),
        count(ServerState::Dead),
        count(ServerState::Draining),
    );
    let _ = writeln!(
        out,
        "  {:>4}  {:<9} {:<8} {:<22} {:>10} {:>10} {:>9} {:>5} {:>10}",
        "ID", "STATE", "RACK", "ADDRESS", "CAPACITY", "FREE", "REPLICAS", "LOAD", "HEARTBEAT"
    );
    for s in &status.servers {
        let rack = if s.rack.is_empty() { "-" } else { &s.rack };
        let _ = writeln!(
            out,
            "  {:>4}  {:<9} {:<8} {:<22} {:>10} {:>10} {:>9} {:>5} {:>8}ms",
            s.server_id,
            state_name(s.state),
            rack,
            s.addr,
            human_bytes(s.capacity_bytes),
            human_bytes(s.free_bytes),
            s.replicas,
            s.active_transfers,
            s.last_heartbeat_ms,
        );
    }
    let capacity: u64 = status.servers.iter().map(|s| s.capacity_bytes).sum();
    let free: u64 = status.servers.iter().map(|s| s.free_bytes).sum();
    let _ = writeln!(out, "capacity: {}", human_bytes(capacity));
    let _ = writeln!(out, "free: {}", human_bytes(free));
    let _ = writeln!(out, "inodes: {}", status.files);
    let _ = writeln!(out, "chunks: {}", status.chunks);
    let _ = writeln!(out, "replication: {}", status.replication);
    if status.health_checked {
        let _ = writeln!(out, "under-replicated: {}", status.under_replicated);
        let _ = writeln!(out, "missing: {}", status.missing);
        let _ = writeln!(out, "over-replicated: {}", status.over_replicated);
    } else {
        // A new leader has not checked every chunk yet: zeros would claim a health nobody knows.
        for line in ["under-replicated", "missing", "over-replicated"] {
            let _ = writeln!(out, "{line}: checking");
        }
    }
    let _ = writeln!(out, "copies in flight: {}", status.replications_in_flight);
    out
}

/// The health word of a chunk with `healthy` of `wanted` replicas and `readable` at all.
fn chunk_status(healthy: u32, wanted: u32, readable: bool) -> &'static str {
    if !readable {
        "missing"
    } else if healthy < wanted {
        "under-replicated"
    } else {
        "ok"
    }
}

/// The `dfs info PATH` report.
pub fn format_info(path: &str, info: &pb::FileInfoReply) -> String {
    let attr = info.attr.unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "path: {path}");
    let _ = writeln!(out, "inode: {}", attr.ino);
    let _ = writeln!(out, "size: {}", attr.size);
    let _ = writeln!(out, "chunks: {}", info.chunks.len());
    let _ = writeln!(out, "replication: {}", info.replication);
    for chunk in &info.chunks {
        let readable = chunk
            .replicas
            .iter()
            .any(|r| r.state != ServerState::Dead as i32);
        let _ = writeln!(
            out,
            "chunk {} id {:016x} version {} length {} replicas {}/{} {}",
            chunk.index,
            chunk.chunk_id,
            chunk.version,
            chunk.length,
            chunk.healthy,
            info.replication,
            chunk_status(chunk.healthy, info.replication, readable),
        );
        for r in &chunk.replicas {
            let rack = if r.rack.is_empty() { "-" } else { &r.rack };
            let _ = writeln!(
                out,
                "  server {} {} rack {} {}",
                r.server_id,
                r.addr,
                rack,
                state_name(r.state)
            );
        }
    }
    out
}

/// The `dfs fsck PATH` report.
pub fn format_fsck(path: &str, fsck: &pb::FsckReply) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "path: {path}");
    let _ = writeln!(out, "directories: {}", fsck.directories);
    let _ = writeln!(out, "files: {}", fsck.files);
    let _ = writeln!(out, "chunks: {}", fsck.chunks);
    let _ = writeln!(out, "healthy: {}", fsck.healthy_chunks);
    let _ = writeln!(out, "under-replicated: {}", fsck.under_replicated);
    let _ = writeln!(out, "missing: {}", fsck.missing);
    for file in &fsck.damaged_files {
        let _ = writeln!(out, "damaged: /{file}");
    }
    let healthy = fsck.under_replicated + fsck.missing == 0;
    let _ = writeln!(
        out,
        "status: {}",
        if healthy { "HEALTHY" } else { "DAMAGED" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn fsck_reports_damage() {
        let reply = pb::FsckReply {
            files: 2,
            chunks: 3,
            healthy_chunks: 2,
            missing: 1,
            damaged_files: vec!["a/b".into()],
            ..Default::default()
        };
        let text = format_fsck("/", &reply);
        assert!(text.contains("damaged: /a/b\n"), "{text}");
        assert!(text.ends_with("status: DAMAGED\n"), "{text}");
    }
}
