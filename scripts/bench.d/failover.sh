# shellcheck shell=bash
# The failover part of scripts/bench: how long a mount of a group of masters cannot change
# metadata when the leader dies. Each round finds the leader, kills it with SIGKILL, and times
# until a `mkdir` of a fresh name on the mount succeeds (a failed one is retried at once with
# another name). Then it restarts the killed master with scripts/dfs-up and waits until the
# leader sees it caught up, so every round starts from a whole group. It logs each round and
# prints the median and the worst of the rounds, in the format of the small-file figures:
#   failover-med       2.632 s
#   failover-max       2.911 s
#
# Sourced by scripts/bench (after scripts/common.sh), which calls
# `failover_figures DIR ROUNDS`, DIR being a directory on the mount, with the DFS_* variables
# of a cluster of three masters or more that is up.

# How long one failover or one catch-up may take before the round counts as failed.
FAILOVER_GIVE_UP_S=60

# masters_report [ADDRS]: `dfs masters`, answered by one of ADDRS (default: every master). Only
# the leader's report has each member's lag.
# shellcheck disable=SC2046 # tls_args is a list of words
masters_report() {
  "$DFS_BIN/dfs" $(tls_args client) --master "${1:-$(master_addrs)}" masters 2>/dev/null
}

# leader_of: the leader's id and address from a report on stdin ("none" if none is elected).
leader_of() { awk '$1 == "leader:" { gsub(/[()]/, "", $3); print $2, $3; exit }'; }

# caught_up ID: whether the leader answers and sees master ID with nothing left to replicate.
caught_up() {
  local id addr
  read -r id addr < <(masters_report | leader_of)
  [ -n "$addr" ] || return 1
  # Rows start with two marker columns (`*` the leader, `>` the member that answered), then
  # ID ADDR ROLE VOTER TERM LAST-LOG APPLIED LAG LAST-CONTACT.
  masters_report "$addr" | awk -v leader="$id" -v id="$1" '
    $1 == "answered" { answered = $3 }
    { split(substr($0, 3), f, " ") }
    f[1] == id && f[2] ~ /:/ { lag = f[8] }
    END { exit !(answered == leader && lag == "0") }'
}

# failover_round DIR ROUND: kills the leader and prints the seconds until a mkdir in DIR
# succeeds; then restarts the killed master and waits until it has caught up.
failover_round() {
  local dir=$1 round=$2 leader addr pid start now try=0 seconds
  read -r leader addr < <(masters_report | leader_of)
  [ -n "$addr" ] || die "failover $round: the group has no leader"
  pid=$(cat "$DFS_STATE_DIR/run/master$leader.pid") || die "no pid file for master $leader"
  kill -KILL "$pid"
  start=$EPOCHREALTIME
  until mkdir "$dir/round$round.$try" 2>/dev/null; do
    try=$((try + 1))
    now=$EPOCHREALTIME
    (($(echo "$now - $start > $FAILOVER_GIVE_UP_S" | bc))) ||
      die "failover $round: no mkdir succeeded within $FAILOVER_GIVE_UP_S s of killing master $leader"
    sleep 0.01
  done
  now=$EPOCHREALTIME
  seconds=$(echo "$now - $start" | bc)
  log "failover $round: killed master $leader (leader, $addr); mkdir succeeded after $seconds s ($try failed)"
  echo "$seconds"

  "$DFS_ROOT/scripts/dfs-up" >/dev/null 2>&1 ||
    die "failover $round: scripts/dfs-up could not restart master $leader; see $DFS_STATE_DIR/log/"
  for _ in $(seq $((FAILOVER_GIVE_UP_S * 5))); do
    caught_up "$leader" && return
    sleep 0.2
  done
  die "failover $round: master $leader had not caught up $FAILOVER_GIVE_UP_S s after its restart"
}

# failover_figures DIR ROUNDS: runs the rounds in a fresh directory under DIR, then removes it.
failover_figures() {
  local dir times=() round
  dir=$(mktemp -d "$1/dfs-bench-failover.XXXXXX") || return 1
  for round in $(seq "$2"); do
    times+=("$(failover_round "$dir" "$round")") || return 1
  done
  rm -rf "$dir"
  printf '%s\n' "${times[@]}" | sort -g | awk '
    { t[NR] = $1 }
    END {
      med = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
      printf "%-14s %9.3f s\n%-14s %9.3f s\n", "failover-med", med, "failover-max", t[NR]
    }'
}
