#!/bin/bash
# scenarios.sh ID DIR ARBITER [--long]
# Build one lab (lab.sh), bring both nodes quorate with the device, then run the scenario set and
# print one result line per scenario:
#   RESULT arbiter=A scenario=S winner=W overlap_ms=.. noquorum_ms=.. failover_ms=.. loser_drop_ms=.. timeline=..
# Quorum is polled in each node namespace with corosync-quorumtool -s every ~0.1 s.
# Default (test) timers: quorum.device.timeout 4000 ms (heartbeat 3200), token 1000 ms, sync_timeout 8000.
# --long: corosync/qdevice defaults (timeout 10000, token 3000, sync_timeout 30000), longer windows.
set -uo pipefail
ID=$1; L=$2; ARB=$3; MODE=${4:-}
HERE=$(cd "$(dirname "$0")" && pwd)
lab() { "$HERE/lab.sh" "$ID" "$L" "$ARB" "$@"; }
now() { date +%s%3N; }
if [ "$MODE" = --long ]; then
  export LAB_TIMEOUT=10000 LAB_TOKEN=3000 LAB_SYNC_TIMEOUT=30000; W=45; SETTLE=25
else
  export LAB_TIMEOUT=${LAB_TIMEOUT:-4000} LAB_TOKEN=${LAB_TOKEN:-1000} LAB_SYNC_TIMEOUT=${LAB_SYNC_TIMEOUT:-8000}; W=15; SETTLE=10
fi
# twonode restart hold: clients of a previous instance use the sync heartbeat (0.8 x sync_timeout)
export LAB_ASSUMED_HB=$((LAB_SYNC_TIMEOUT * 8 / 10))
SW=tn$ID-sw
MONPIDS=()

cleanup() {
  for p in "${MONPIDS[@]}"; do kill "$p" 2>/dev/null; done
  lab down >/dev/null 2>&1
}
trap cleanup EXIT
trap "exit 130" INT TERM

monitor() { # monitor N  -> $L/mon.nN : "epoch_ms nN quorate nodes votes"
  local i=$1
  while true; do
    local s; s=$(ip netns exec tn$ID-n$i timeout 2 corosync-quorumtool -s 2>/dev/null)
    local t; t=$(now)
    local q nn tv
    q=$(awk -F: '/^Quorate:/{gsub(/ /,"",$2);print $2}' <<<"$s")
    nn=$(awk -F: '/^Nodes:/{gsub(/ /,"",$2);print $2}' <<<"$s")
    tv=$(awk -F: '/^Total votes:/{gsub(/ /,"",$2);print $2}' <<<"$s")
    echo "$t n$i ${q:-ERR} ${nn:-0} ${tv:-0}" >> "$L/mon.n$i"
    sleep 0.1
  done
}

state() { tail -n1 "$L/mon.n$1" 2>/dev/null | awk '{print $3, $4, $5}'; }

wait_healthy() { # both nodes quorate, 2 members, 3 votes; $1 = max seconds
  local end=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    [ "$(state 1)" = "Yes 2 3" ] && [ "$(state 2)" = "Yes 2 3" ] && return 0
    sleep 0.3
  done
  echo "lab[$ID/$ARB]: not healthy after $1 s: n1=[$(state 1)] n2=[$(state 2)]" >&2
  return 1
}

result() { # result SCENARIO WINNER T0 T1
  local out
  out=$(sort -n "$L/mon.n1" "$L/mon.n2" | awk -v t0="$3" -v t1="$4" -v winner="$2" -f "$HERE/analyze.awk")
  echo "RESULT arbiter=$ARB scenario=$1 winner=$2 $out"
}

heal() {
  for i in 1 2; do
    ip -n $SW link set r-n$i up; ip -n $SW link set q-n$i up; touch "$L/n$i/healthy"
  done
}

holder() { # the node whose qdevice column shows the vote (A,V) while alone, else empty
  for i in 1 2; do
    ip netns exec tn$ID-n$i corosync-quorumtool -s 2>/dev/null | awk '/\(local\)/{print $3}' | grep -q '^A,V' && echo $i && return
  done
}

wait_no_hold() { # twonode: wait until the restart hold can no longer delay a grant (status socket)
  [ "$ARB" = twonode ] || return 0
  # the hold lasts (2 + 1.25) x LAB_ASSUMED_HB x 1.01 + margin (80 s with default timers);
  # it stops mattering earlier, once every node reported the whole ring (restart_hold_nodes empty)
  local max=$(( LAB_ASSUMED_HB * 13 / 4000 + 10 ))
  local end=$(( $(date +%s) + max ))
  while [ "$(date +%s)" -lt "$end" ]; do
    lab arbiter-status-json 2>/dev/null | tr -d ' \n' | grep -q '"restart_hold_nodes":\[\]' && return 0
    sleep 0.5
  done
  echo "lab[$ID/$ARB]: restart hold still matters after $max s" >&2
}

ensure_arbiter() {
  if [ ! -f "$L/arb/arbiter.pid" ] || ! kill -0 "$(cat "$L/arb/arbiter.pid")" 2>/dev/null; then lab start-arbiter; fi
}

recover() { heal; ensure_arbiter; wait_healthy 60 || { lab stop-arbiter; lab start-arbiter; wait_healthy 60; }; wait_no_hold; sleep 2; }

lab up >/dev/null 2>"$L.up.err" || { cat "$L.up.err" >&2; exit 1; }
lab start-arbiter; lab start-nodes; sleep 2; lab start-qdevices
monitor 1 & MONPIDS+=($!)
monitor 2 & MONPIDS+=($!)
if ! wait_healthy 90; then echo "RESULT arbiter=$ARB scenario=setup error=never-quorate-with-device"; exit 1; fi
wait_no_hold; sleep 2
SCEN=${SCENARIOS:-ring-cut isolate-n1 arbiter-killed arbiter-restart-split holder-link-cut heuristics}
for sc in $SCEN; do
  t0=$(now)
  case $sc in
  ring-cut)
    ip -n $SW link set r-n1 down; sleep $W; result $sc 1 "$t0" "$(now)" ;;
  isolate-n1)
    ip -n $SW link set r-n1 down; ip -n $SW link set q-n1 down; sleep $W; result $sc 2 "$t0" "$(now)" ;;
  arbiter-killed)
    lab stop-arbiter KILL; sleep $((W / 2)); result $sc both "$t0" "$(now)" ;;
  arbiter-restart-split)
    ip -n $SW link set r-n1 down; sleep $SETTLE
    t0=$(now); lab stop-arbiter KILL; sleep 1; lab start-arbiter; sleep $((W * 2))
    result $sc "$(holder)" "$t0" "$(now)"
    h=$(holder); [ -n "$h" ] || echo "lab[$ID/$ARB]: $sc: nobody holds the vote at the end" >&2 ;;
  holder-link-cut)
    ip -n $SW link set r-n1 down; sleep $SETTLE
    h=$(holder)
    if [ -z "$h" ]; then echo "RESULT arbiter=$ARB scenario=$sc error=no-holder-after-split"; recover; continue; fi
    t0=$(now); ip -n $SW link set q-n$h down; sleep $((W + W / 2))
    result $sc $((3 - h)) "$t0" "$(now)" ;;
  heuristics)
    rm -f "$L/n1/healthy"; sleep 1; ip -n $SW link set r-n1 down; sleep $W
    result $sc 2 "$t0" "$(now)" ;;
  *) echo "unknown scenario $sc" >&2 ;;
  esac
  echo "$(now) EVENT $sc done" >> "$L/events"
  recover
done
