# shellcheck shell=bash
# Shared by the scripts in this directory: prerequisites, the one build, and the layout of a
# local cluster's state directory. Source it; it does nothing on its own.

DFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# One build directory per machine (also set in .cargo/config.toml): the bundled RocksDB takes
# ~20 minutes to compile on two cores, so every clone, script and CI run shares it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/dfs-target}
# The binaries the scripts run: this checkout's release build, built on demand; or, with
# DFS_BIN=DIR, another build's binaries, run as they are (nothing is built then).
if [ -n "${DFS_BIN:-}" ]; then
  DFS_BIN_PREBUILT=1
else
  DFS_BIN=$CARGO_TARGET_DIR/release DFS_BIN_PREBUILT=
fi

# Debian packages the build and the mount need: protoc for the gRPC contract, libclang for
# RocksDB's bindings, fuse3 for fusermount3 (unprivileged and auto-unmounting mounts); git, tar,
# rsync, sqlite3 and attr for the tests running real programs on a mount.
DFS_DEBIAN_PACKAGES="protobuf-compiler libclang-dev clang pkg-config fuse3 g++ make git tar rsync sqlite3 attr"

# Progress lines, bold on a terminal and plain in CI logs.
log() { if [ -t 2 ]; then printf '\033[1m==>\033[0m %s\n' "$*" >&2; else printf '==> %s\n' "$*" >&2; fi; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages among its arguments that are missing (as root, or through sudo).
install_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Installs what building and running dfs needs, plus the Debian packages given as arguments.
install_prerequisites() {
  # shellcheck disable=SC2086 # the list is one word per package
  install_packages $DFS_DEBIAN_PACKAGES "$@"
  [ -n "$DFS_BIN_PREBUILT" ] || command -v cargo >/dev/null ||
    die "cargo is not installed: install a Rust toolchain (https://rustup.rs) and retry"
}

# Builds every binary with the one shared release profile; with DFS_BIN set, only checks that
# the binaries are there.
build_release() {
  if [ -n "$DFS_BIN_PREBUILT" ]; then
    local bin
    for bin in dfs-master dfs-chunkserver dfs-fuse; do
      [ -x "$DFS_BIN/$bin" ] || die "$DFS_BIN/$bin not found (DFS_BIN names the directory of a build's binaries)"
    done
    log "using the binaries in $DFS_BIN (not building)"
    return
  fi
  log "building dfs (release; the first build compiles RocksDB and takes ~20 minutes)"
  (cd "$DFS_ROOT" && cargo build --release --workspace --bins --quiet)
}

# Where a local cluster keeps its data, pid files and logs.
DFS_STATE_DIR=${DFS_STATE_DIR:-$([ "$(id -u)" -eq 0 ] && echo /var/lib/dfs || echo "$HOME/.local/state/dfs")}
DFS_MOUNT=${DFS_MOUNT:-/mnt/dfs}
# Masters listen on DFS_MASTER_PORT and the ports after it, one each.
DFS_MASTERS=${DFS_MASTERS:-3}
DFS_MASTER_PORT=${DFS_MASTER_PORT:-9400}
DFS_CHUNKSERVER_BASE_PORT=${DFS_CHUNKSERVER_BASE_PORT:-9500}
DFS_CHUNKSERVERS=${DFS_CHUNKSERVERS:-3}
# HTTP (metrics; a master's API and dashboard): master i on DFS_HTTP_PORT+i-1, chunkserver i
# on DFS_HTTP_PORT+10+i, the mount on DFS_HTTP_PORT+90. DFS_HTTP_PORT=off starts every
# process without HTTP, and so without metrics.
DFS_HTTP_PORT=${DFS_HTTP_PORT:-9600}

# The port of master $1 (1, 2, ...).
master_port() { echo $((DFS_MASTER_PORT + $1 - 1)); }
# The HTTP port of process $1 (master1, cs2, fuse, ...).
http_port() {
  case $1 in
    master*) echo $((DFS_HTTP_PORT + ${1#master} - 1)) ;;
    cs*) echo $((DFS_HTTP_PORT + 10 + ${1#cs})) ;;
    fuse) echo $((DFS_HTTP_PORT + 90)) ;;
  esac
}
# The HTTP options of process $1: where it listens, and the file it writes the address to.
http_args() {
  [ "$DFS_HTTP_PORT" != off ] || return 0
  echo "--http-listen 127.0.0.1:$(http_port "$1") --http-addr-file $DFS_STATE_DIR/run/$1.http"
}
# The HTTP address process $1 wrote once it served, or "?" if it wrote none.
http_addr() { cat "$DFS_STATE_DIR/run/$1.http" 2>/dev/null || echo "?"; }
# ", http://ADDR/" for process $1, or nothing when it serves no HTTP: for progress lines.
http_note() { [ "$DFS_HTTP_PORT" = off ] || echo ", http://$(http_addr "$1")/"; }
# Mutual TLS (the default): a cluster CA and a certificate per process in $DFS_STATE_DIR/tls,
# made by dfs-up on the first start. DFS_INSECURE=true runs the cluster in plaintext instead.
insecure() {
  case ${DFS_INSECURE:-false} in true | 1 | yes | on) return 0 ;; *) return 1 ;; esac
}
# The TLS options of process $1 (master1, cs2, client): its certificate, or --insecure.
tls_args() {
  if insecure; then
    echo "--insecure"
  else
    local dir=$DFS_STATE_DIR/tls
    echo "--tls-ca $dir/ca.pem --tls-cert $dir/$1.pem --tls-key $dir/$1.key"
  fi
}
# dfs ARGS...: the dfs command against the local cluster, with its client certificate.
dfs_cli() {
  # shellcheck disable=SC2046 # tls_args is a list of words
  "$DFS_BIN/dfs" $(tls_args client) --master "$(master_addrs)" "$@"
}

# The masters' addresses, separated by commas, as clients and chunkservers take them.
master_addrs() {
  local i addrs=
  for i in $(seq "$DFS_MASTERS"); do addrs+="127.0.0.1:$(master_port "$i"),"; done
  echo "${addrs%,}"
}

# Whether the process in pid file $1 is alive.
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Whether $1 is a mount point.
mounted() { awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }
