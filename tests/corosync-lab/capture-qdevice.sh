#!/bin/bash
# capture-qdevice.sh ID DIR OUT: build one lab (lab.sh, arbiter = twonode), and store what
# `corosync-quorumtool -s` and `corosync-qdevice-tool -sv` print on each node in the states
# `twonode doctor` must tell apart: qdevice not started, healthy, ring cut (n1 keeps the vote),
# arbiter killed. Files: OUT/STATE.nN.quorumtool, OUT/STATE.nN.qdevice-tool (+ arbiter status).
# Needs root and the lab's packages (see README.md). Used to make fixtures/corosync/qdevice.
set -uo pipefail
ID=$1; L=$2; OUT=$3
HERE=$(cd "$(dirname "$0")" && pwd)
export LAB_TIMEOUT=${LAB_TIMEOUT:-4000} LAB_TOKEN=${LAB_TOKEN:-1000} LAB_SYNC_TIMEOUT=${LAB_SYNC_TIMEOUT:-8000}
export LAB_ASSUMED_HB=$((LAB_SYNC_TIMEOUT * 8 / 10))
lab() { "$HERE/lab.sh" "$ID" "$L" twonode "$@"; }
SW=tn$ID-sw
trap 'lab down >/dev/null 2>&1' EXIT
mkdir -p "$OUT"
snap() { # snap STATE
  for i in 1 2; do
    ip netns exec tn$ID-n$i corosync-quorumtool -s > "$OUT/$1.n$i.quorumtool" 2>&1; echo "exit=$?" >> "$OUT/$1.n$i.quorumtool.rc"
    corosync-qdevice-tool -s -v -p "$L/n$i/run/corosync-qdevice/corosync-qdevice.sock" > "$OUT/$1.n$i.qdevice-tool" 2>&1
    echo "exit=$?" >> "$OUT/$1.n$i.qdevice-tool.rc"
  done
  "${TWONODE:-twonode}" --json arbiter status --socket "$L/arb/run/twonode-arbiter.sock" > "$OUT/$1.arbiter-status.json" 2>&1
  echo "captured $1" >&2
}
quorate2() { ip netns exec tn$ID-n$1 corosync-quorumtool -s 2>/dev/null | grep -q '^Total votes: *3'; }
lab up >/dev/null 2>"$L.up.err" || { cat "$L.up.err" >&2; exit 1; }
lab start-arbiter; lab start-nodes; sleep 6
snap no-qdevice
lab start-qdevices
for _ in $(seq 120); do quorate2 1 && quorate2 2 && break; sleep 0.5; done
sleep 3
snap healthy
ip -n $SW link set r-n1 down; sleep 15
snap ring-cut
ip -n $SW link set r-n1 up; sleep 15
for _ in $(seq 120); do quorate2 1 && quorate2 2 && break; sleep 0.5; done
lab stop-arbiter KILL; sleep 12
snap arbiter-killed
