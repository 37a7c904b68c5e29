#!/bin/bash
# twonode pacemaker lab: real corosync 3 + pacemaker 2.1 on two nodes, each in a network namespace
# of its own, fencing through two OpenIPMI ipmi_sim BMCs with twonode as the fence agent
# (`fence_twonode`), optionally corosync-qdevice against `twonode arbiter serve`.
#
# Usage (root):  lab.sh ID DIR COMMAND [ARGS]
#   ID   short lab id (letters/digits); namespaces tnpm<ID>-sw, tnpm<ID>-n1, tnpm<ID>-n2.
#   DIR  lab folder (configs, CIBs, logs, BMC states, pid files). Created by `up`.
# Commands:
#   up                     namespaces, BMC + node folders, corosync.conf (two_node)
#   conf two_node|qdevice  rewrite both corosync.conf (qdevice: two_node off, device net ffsplit)
#   start-bmcs             ipmi_sim for n1 (10.77.2.254:6231) and n2 (:6232) in the switch namespace
#   start-arbiter          `twonode arbiter serve` on 10.77.2.254:5403 (tls off) in the switch namespace
#   boot N | halt N        power a node's software on (corosync + pacemaker [+ qdevice]) / kill it
#   start-power-watch      couple each BMC's power to its node: power off -> every process of the
#                          node is SIGKILLed, power on -> the node boots again (events in DIR/events)
#   x N CMD...             run CMD inside node N (its network, mount and UTS namespaces)
#   power N                the chassis power of node N's BMC (1 on, 0 off) from the BMC state
#   down                   kills everything this lab started (by pid / by namespace), removes namespaces
#
# Each node has a holder process (`sleep infinity`) in a private mount + UTS namespace (hostname nN)
# that binds lab folders over /etc/corosync, /etc/pacemaker, /var/lib/pacemaker, /var/log/pacemaker
# and /run, mounts a fresh tmpfs on /dev/shm (libqb's shared-memory IPC) and an overlay over
# /usr/sbin that adds fence_twonode (the agent binary built beside $TWONODE; a symlink to $TWONODE
# when there is none) where pacemaker's fencer looks for agents. Daemons and CLI tools of a node
# are entered into that holder's namespaces with nsenter, so each node sees only its own IPC
# (libqb's abstract sockets are per network namespace).
# Addresses exist only inside the namespaces: ring 10.77.1.0/24 (bridge br-ring in the switch
# namespace), management 10.77.2.0/24 (bridge br-q, switch 10.77.2.254: BMCs and arbiter).
# Environment: TWONODE (path of the twonode binary), LAB_TOKEN (totem.token ms, default 1000).
set -euo pipefail
ID=$1; L=$2; CMD=$3; shift 3
SW=tnpm$ID-sw; N1=tnpm$ID-n1; N2=tnpm$ID-n2
TWONODE=${TWONODE:-twonode}
CLUSTER=pmlab
HERE=$(cd "$(dirname "$0")" && pwd)
SIMS=$(cd "$HERE/../../fixtures/sims/ipmi_sim" && pwd)
log() { echo "pmlab[$ID] $*" >&2; }
now() { date +%s%3N; }
event() { echo "$(now) $*" >> "$L/events"; }

net_up() {
  for ns in $SW $N1 $N2; do ip netns add $ns; ip -n $ns link set lo up; done
  ip -n $SW link add br-ring type bridge
  ip -n $SW link add br-q type bridge
  ip -n $SW link set br-ring up
  ip -n $SW link set br-q up
  ip -n $SW addr add 10.77.2.254/24 dev br-q
  for i in 1 2; do
    local ns=tnpm$ID-n$i
    ip link add r-n$i netns $SW type veth peer name ring0 netns $ns
    ip -n $SW link set r-n$i master br-ring up
    ip -n $ns addr add 10.77.1.$i/24 dev ring0
    ip -n $ns link set ring0 up
    ip link add q-n$i netns $SW type veth peer name mgmt0 netns $ns
    ip -n $SW link set q-n$i master br-q up
    ip -n $ns addr add 10.77.2.$i/24 dev mgmt0
    ip -n $ns link set mgmt0 up
  done
}

mkconf() { # mkconf two_node|qdevice
  local mode=$1 token=${LAB_TOKEN:-1000} q
  if [ "$mode" = qdevice ]; then
    q="    device {
        model: net
        votes: 1
        timeout: ${LAB_QD_TIMEOUT:-4000}
        sync_timeout: ${LAB_QD_SYNC:-8000}
        net {
            host: 10.77.2.254
            port: 5403
            algorithm: ffsplit
            tie_breaker: lowest
            tls: off
        }
    }"
  else
    q="    two_node: 1"
  fi
  for i in 1 2; do cat > "$L/n$i/etc/corosync.conf" <<EOC
# twonode pacemaker lab ($mode), node n$i
totem {
    version: 2
    cluster_name: $CLUSTER
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: $token
}
logging {
    to_stderr: no
    to_syslog: no
    to_logfile: yes
    logfile: /var/log/pacemaker/corosync.log
    timestamp: hires
}
quorum {
    provider: corosync_votequorum
$q
}
nodelist {
    node {
        name: n1
        nodeid: 1
        ring0_addr: 10.77.1.1
    }
    node {
        name: n2
        nodeid: 2
        ring0_addr: 10.77.1.2
    }
}
uidgid {
    uid: hacluster
    gid: haclient
}
system {
    state_dir: /var/lib/pacemaker/corosync-state
}
EOC
  done
  echo "$mode" > "$L/mode"
}

node_dirs() {
  mkdir -p "$L/agents"
  local agent
  agent=$(dirname "$(readlink -f "$TWONODE")")/fence_twonode
  [ -x "$agent" ] || agent=$(readlink -f "$TWONODE")
  ln -sf "$agent" "$L/agents/fence_twonode"
  for i in 1 2; do
    local d=$L/n$i
    mkdir -p "$d/etc" "$d/pcmk-etc" "$d/run" "$d/log" "$d/lib"/{cib,pengine,blackbox,cores} "$d/lib/corosync-state"
    chown -R hacluster:haclient "$d/lib" "$d/log"
    chmod 750 "$d/lib"/{cib,pengine,blackbox,cores}
    chmod 770 "$d/log"
    # /etc/pacemaker/authkey (pacemaker remote / cluster-wide key), one per lab
    [ -f "$L/authkey" ] || dd if=/dev/urandom of="$L/authkey" bs=4096 count=1 status=none
    install -m 0640 -o hacluster -g haclient "$L/authkey" "$d/pcmk-etc/authkey"
  done
}

holder_pid() { cat "$L/n$1/holder.pid" 2>/dev/null; }

start_holder() { # start_holder N : the node's private mount + UTS namespace
  local i=$1 d=$L/n$1
  ip netns exec tnpm$ID-n$i unshare -m -u --propagation private bash -c "
    set -e
    hostname n$i
    mount --bind '$d/etc' /etc/corosync
    mount --bind '$d/pcmk-etc' /etc/pacemaker
    mount --bind '$d/lib' /var/lib/pacemaker
    mount --bind '$d/log' /var/log/pacemaker
    mount --bind '$d/run' /run
    mount -t tmpfs -o mode=1777,size=256m tmpfs-n$i /dev/shm
    mount -t overlay overlay -o lowerdir='$L/agents':/usr/sbin /usr/sbin
    exec sleep infinity" </dev/null >>"$d/holder.log" 2>&1 &
  echo $! > "$d/holder.pid"
  # wait until the mounts are in place (the holder execs sleep after the last mount)
  for _ in $(seq 50); do
    [ "$(readlink /proc/$!/exe 2>/dev/null)" = "$(readlink -f /usr/bin/sleep)" ] && return 0
    sleep 0.1
  done
  log "holder of n$i did not come up: $(cat "$d/holder.log")"; return 1
}

x() { # x N CMD... : run in node N's namespaces
  local i=$1; shift
  local p; p=$(holder_pid "$i")
  [ -n "$p" ] || { echo "node n$i is not running" >&2; return 1; }
  nsenter -t "$p" -n -m -u -- "$@"
}

boot() { # boot N
  local i=$1 d=$L/n$1
  if [ -n "$(holder_pid "$i")" ] && kill -0 "$(holder_pid "$i")" 2>/dev/null; then log "n$i already up"; return 0; fi
  rm -rf "${d:?}/run"/*
  start_holder "$i"
  local p; p=$(holder_pid "$i")
  nsenter -t "$p" -n -m -u -- corosync -f -c /etc/corosync/corosync.conf >>"$d/corosync.stdout" 2>&1 </dev/null &
  echo $! > "$d/corosync.pid"
  for _ in $(seq 100); do nsenter -t "$p" -n -m -u -- corosync-cfgtool -s >/dev/null 2>&1 && break; sleep 0.1; done
  if [ "$(cat "$L/mode")" = qdevice ]; then
    mkdir -p "$d/run/corosync-qdevice"
    nsenter -t "$p" -n -m -u -- corosync-qdevice -f -d >>"$d/qdevice.log" 2>&1 </dev/null &
    echo $! > "$d/qdevice.pid"
  fi
  nsenter -t "$p" -n -m -u -- env PCMK_logfile=/var/log/pacemaker/pacemaker.log PCMK_logfacility=none \
    pacemakerd -f >>"$d/pacemakerd.stdout" 2>&1 </dev/null &
  echo $! > "$d/pacemakerd.pid"
  event "boot n$i"
}

halt() { # halt N : power loss, every process in the node's network namespace gets SIGKILL
  local i=$1 d=$L/n$1
  local pids; pids=$(ip netns pids tnpm$ID-n$i 2>/dev/null || true)
  [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 50); do [ -z "$(ip netns pids tnpm$ID-n$i 2>/dev/null)" ] && break; sleep 0.1; done
  rm -f "$d"/{holder,corosync,qdevice,pacemakerd}.pid
  event "halt n$i"
}

power() { # 1 = on, 0 = off (a missing state file means on, like chassiscontrol.sh)
  local f=$L/bmc$1/state/power.0x20
  if [ -f "$f" ]; then tr -d ' \n' < "$f"; else echo 1; fi
}

start_bmc() { # start_bmc N : BMC of node N on 10.77.2.254:623N (UDP)
  local i=$1 b=$L/bmc$1
  mkdir -p "$b/state"
  cp "$SIMS/chassiscontrol.sh" "$SIMS/sim.emu" "$b/"
  chmod 755 "$b/chassiscontrol.sh"
  sed "s#@HERE@#$b#; s#@PORT@#623$i#; s#addr 127.0.0.1#addr 10.77.2.254#; s#\"admin\"  \"secret\"#\"admin\"  \"$(cat "$L/bmc-password")\"#" "$SIMS/lan.conf" > "$b/lan.conf"
  echo 1 > "$b/state/power.0x20"
  ip netns exec $SW env IPMISIM_STATE_DIR="$b/state" \
    ipmi_sim -c "$b/lan.conf" -f "$b/sim.emu" -s "$b/state" -n </dev/null >>"$b/ipmi_sim.log" 2>&1 &
  echo $! > "$b/ipmi_sim.pid"
  for _ in $(seq 50); do
    ip netns exec $N1 ipmitool -I lanplus -C 3 -H 10.77.2.254 -p 623$i -U admin -f "$L/bmc-password" \
      chassis power status >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "BMC $i does not answer: $(cat "$b/ipmi_sim.log")"; return 1
}

kill_pidfile() { # kill_pidfile FILE [SIGNAL]
  local f=$1 sig=${2:-TERM}
  [ -f "$f" ] || return 0
  local p; p=$(cat "$f"); rm -f "$f"
  kill -s "$sig" "$p" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -s KILL "$p" 2>/dev/null || true
}

power_watch() {
  local last1=1 last2=1
  while true; do
    for i in 1 2; do
      local p; p=$(power "$i")
      local lv=last$i
      if [ "$p" != "${!lv}" ]; then
        event "bmc$i power $p"
        if [ "$p" = 0 ]; then halt "$i"; else boot "$i" || true; fi
        eval "last$i=$p"
      fi
    done
    sleep 0.1
  done
}

case $CMD in
up)
  mkdir -p "$L"
  # a password of this lab only (so an argv scan cannot confuse it with another test's BMC)
  printf 'pm%s' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" > "$L/bmc-password"; chmod 600 "$L/bmc-password"
  : > "$L/events"
  net_up; node_dirs; mkconf two_node
  log "up: namespaces $SW $N1 $N2, folder $L" ;;
conf) mkconf "$1" ;;
start-bmcs) start_bmc 1; start_bmc 2 ;;
start-arbiter)
  mkdir -p "$L/arb"
  cat > "$L/arb/arbiter.toml" <<EOC
# twonode arbiter, pacemaker lab $ID
listen = "10.77.2.254"
port = 5403
status_socket = "$L/arb/twonode-arbiter.sock"
[tls]
mode = "off"
EOC
  ip netns exec $SW env TWONODE_LOG=${TWONODE_LOG:-info} "$TWONODE" arbiter serve --config "$L/arb/arbiter.toml" \
    </dev/null >>"$L/arb/arbiter.log" 2>&1 &
  echo $! > "$L/arb/arbiter.pid" ;;
stop-arbiter) kill_pidfile "$L/arb/arbiter.pid" ;;
boot) boot "$1" ;;
halt) halt "$1" ;;
start-power-watch)
  power_watch </dev/null >>"$L/power-watch.log" 2>&1 &
  echo $! > "$L/power-watch.pid" ;;
x) x "$@" ;;
power) power "$1" ;;
down)
  kill_pidfile "$L/power-watch.pid" KILL
  for i in 1 2; do halt "$i" 2>/dev/null || true; done
  for i in 1 2; do kill_pidfile "$L/bmc$i/ipmi_sim.pid"; done
  kill_pidfile "$L/arb/arbiter.pid"
  for ns in $SW $N1 $N2; do
    pids=$(ip netns pids $ns 2>/dev/null || true)
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    ip netns del $ns 2>/dev/null || true
  done
  log "down" ;;
*) echo "lab.sh: unknown command $CMD" >&2; exit 2 ;;
esac
