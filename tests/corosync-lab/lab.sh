#!/bin/bash
# twonode corosync lab: real corosync 3 + corosync-qdevice on two nodes, an arbiter (real
# corosync-qnetd or `twonode arbiter serve`) on a third, each in a network namespace of its own.
#
# Usage (root):  lab.sh ID DIR ARBITER COMMAND [ARGS]
#   ID       short lab id (letters/digits); namespaces are tn<ID>-sw, tn<ID>-n1, tn<ID>-n2, so
#            several labs run side by side without sharing anything.
#   DIR      lab folder (configs, NSS dbs, logs, pid files). Created by `up`.
#   ARBITER  qnetd | twonode
# Commands: up (namespaces + certificates + configs), start-arbiter, stop-arbiter, start-nodes,
#           start-qdevices, status N, down (kills what this lab started, by pid, removes namespaces)
#
# Addresses exist only inside the namespaces made here: ring 10.77.1.0/24 on a bridge in the
# switch namespace, arbiter network 10.77.2.0/24 with the arbiter on 10.77.2.254:5403.
# Every daemon runs in a private mount namespace with lab folders bound over /etc/corosync and
# /run, so the host's files are never touched.
# Environment: TWONODE (path of the twonode binary), LAB_TIMEOUT (quorum.device.timeout, ms),
#              LAB_TOKEN (totem.token, ms), LAB_SYNC_TIMEOUT, QNETD_EXTRA (extra corosync-qnetd args).
set -euo pipefail
ID=$1; L=$2; ARB=$3; CMD=$4; shift 4
SW=tn$ID-sw; N1=tn$ID-n1; N2=tn$ID-n2
TWONODE=${TWONODE:-twonode}
CLUSTER=qlab
log() { echo "lab[$ID/$ARB] $*" >&2; }

# run a command inside a private mount namespace with $1 bound over /etc/corosync (and optional run dir)
inmnt() { # inmnt NETNS ETC RUN CMD...
  local ns=$1 etc=$2 run=$3; shift 3
  ip netns exec "$ns" unshare -m --propagation private bash -c \
    "mount --bind '$etc' /etc/corosync && mount --bind '$run' /run && cd '$L/xfer' && $*"
}

net_up() {
  for ns in $SW $N1 $N2; do ip netns add $ns; ip -n $ns link set lo up; done
  ip -n $SW link add br-ring type bridge
  ip -n $SW link add br-q type bridge
  ip -n $SW link set br-ring up
  ip -n $SW link set br-q up
  ip -n $SW addr add 10.77.2.254/24 dev br-q
  for i in 1 2; do
    local ns=tn$ID-n$i
    ip link add r-n$i netns $SW type veth peer name ring0 netns $ns
    ip -n $SW link set r-n$i master br-ring up
    ip -n $ns addr add 10.77.1.$i/24 dev ring0
    ip -n $ns link set ring0 up
    ip link add q-n$i netns $SW type veth peer name qnet0 netns $ns
    ip -n $SW link set q-n$i master br-q up
    ip -n $ns addr add 10.77.2.$i/24 dev qnet0
    ip -n $ns link set qnet0 up
  done
}

mkconf() {
  local timeout=${LAB_TIMEOUT:-10000} token=${LAB_TOKEN:-3000} sync=${LAB_SYNC_TIMEOUT:-30000}
  for i in 1 2; do cat > "$L/n$i/etc/corosync.conf" <<EOC
# twonode corosync lab ($ARB), node n$i
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
    logfile: $L/n$i/corosync.log
    timestamp: hires
    logger_subsys {
        subsys: QDEVICE
        debug: on
    }
}
quorum {
    provider: corosync_votequorum
    device {
        model: net
        votes: 1
        timeout: $timeout
        sync_timeout: $sync
        net {
            host: 10.77.2.254
            port: 5403
            algorithm: ffsplit
            tie_breaker: lowest
            tls: on
        }
        heuristics {
            mode: sync
            exec_healthy: /usr/bin/test -f $L/n$i/healthy
        }
    }
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
system {
    state_dir: $L/n$i/state
}
EOC
  touch "$L/n$i/healthy"
  done
}

# Certificates. The nodes' side is always the real corosync-qdevice-net-certutil (NSS dbs); the
# arbiter side is corosync-qnetd-certutil (qnetd) or `twonode arbiter certs` (twonode).
certs() {
  local x=$L/xfer
  if [ "$ARB" = qnetd ]; then
    inmnt $SW "$L/arb/etc" "$L/arb/run" corosync-qnetd-certutil -i >/dev/null
    cp "$L/arb/etc/qnetd/nssdb/qnetd-cacert.crt" "$x/"
  elif [ "${LAB_TWONODE_CERTS:-}" = import ]; then
    # migration path: the CA and server key of an existing corosync-qnetd NSS db
    inmnt $SW "$L/arb/etc" "$L/arb/run" corosync-qnetd-certutil -i >/dev/null
    "$TWONODE" arbiter certs import-nssdb --nssdb "$L/arb/etc/qnetd/nssdb" --dir "$L/arb/tls" >/dev/null
    cp "$L/arb/tls/qnetd-cacert.crt" "$x/"
  else
    "$TWONODE" arbiter certs init --dir "$L/arb/tls" >/dev/null
    cp "$L/arb/tls/qnetd-cacert.crt" "$x/"
  fi
  inmnt $N1 "$L/n1/etc" "$L/n1/run" corosync-qdevice-net-certutil -i -c "$x/qnetd-cacert.crt" >/dev/null
  inmnt $N1 "$L/n1/etc" "$L/n1/run" corosync-qdevice-net-certutil -r -n $CLUSTER >/dev/null
  cp "$L/n1/etc/qdevice/net/nssdb/qdevice-net-node.crq" "$x/"
  if [ "$ARB" = qnetd ] || [ "${LAB_TWONODE_CERTS:-}" = import ]; then
    inmnt $SW "$L/arb/etc" "$L/arb/run" corosync-qnetd-certutil -s -c "$x/qdevice-net-node.crq" -n $CLUSTER >/dev/null
    cp "$L/arb/etc/qnetd/nssdb/cluster-$CLUSTER.crt" "$x/"
  else
    "$TWONODE" arbiter certs sign --dir "$L/arb/tls" --csr "$x/qdevice-net-node.crq" \
      --cluster $CLUSTER --out "$x/cluster-$CLUSTER.crt" >/dev/null
  fi
  inmnt $N1 "$L/n1/etc" "$L/n1/run" corosync-qdevice-net-certutil -M -c "$x/cluster-$CLUSTER.crt" >/dev/null
  cp "$L/n1/etc/qdevice/net/nssdb/qdevice-net-node.p12" "$x/"
  inmnt $N2 "$L/n2/etc" "$L/n2/run" corosync-qdevice-net-certutil -i -c "$x/qnetd-cacert.crt" >/dev/null
  inmnt $N2 "$L/n2/etc" "$L/n2/run" corosync-qdevice-net-certutil -m -c "$x/qdevice-net-node.p12" >/dev/null
}

twonode_conf() {
  cat > "$L/arb/arbiter.toml" <<EOC
# twonode arbiter, lab $ID
listen = "10.77.2.254"
port = 5403
status_socket = "$L/arb/run/twonode-arbiter.sock"
lease_margin_ms = ${LAB_LEASE_MARGIN:-1000}
[arbiter]
restart_hold_heartbeat_ms = ${LAB_ASSUMED_HB:-8000}
[tls]
mode = "on"
cert = "$L/arb/tls/server.crt"
key = "$L/arb/tls/server.key"
ca = "$L/arb/tls/ca.crt"
client_cert_required = true
EOC
}

start_bg() { # start_bg PIDFILE LOGFILE NETNS ETC RUN CMD
  local pidf=$1 logf=$2 ns=$3 etc=$4 run=$5; shift 5
  ip netns exec "$ns" unshare -m --propagation private bash -c \
    "mount --bind '$etc' /etc/corosync && mount --bind '$run' /run && exec $*" >>"$logf" 2>&1 &
  echo $! > "$pidf"
}

kill_pidfile() { # kill_pidfile FILE [SIGNAL]
  local f=$1 sig=${2:-TERM}
  [ -f "$f" ] || return 0
  local p; p=$(cat "$f"); rm -f "$f"
  kill -s "$sig" "$p" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -s KILL "$p" 2>/dev/null || true
}

case $CMD in
up)
  mkdir -p "$L/xfer" "$L/arb/etc" "$L/arb/run" "$L/arb/tls"
  for i in 1 2; do mkdir -p "$L/n$i/etc" "$L/n$i/run" "$L/n$i/state"; done
  net_up; mkconf; certs
  [ "$ARB" = twonode ] && twonode_conf
  log "up: namespaces $SW $N1 $N2, folder $L" ;;
start-arbiter)
  mkdir -p "$L/arb/run/corosync-qnetd"
  if [ "$ARB" = qnetd ]; then
    start_bg "$L/arb/arbiter.pid" "$L/arb/arbiter.log" $SW "$L/arb/etc" "$L/arb/run" \
      "corosync-qnetd -f -d -l 10.77.2.254 -p 5403 -s on -c on ${QNETD_EXTRA:-}"
  else
    start_bg "$L/arb/arbiter.pid" "$L/arb/arbiter.log" $SW "$L/arb/etc" "$L/arb/run" \
      "env TWONODE_LOG=${TWONODE_LOG:-info} $TWONODE arbiter serve --config '$L/arb/arbiter.toml'"
  fi ;;
stop-arbiter) kill_pidfile "$L/arb/arbiter.pid" "${1:-TERM}" ;;
start-nodes)
  for i in 1 2; do
    start_bg "$L/n$i/corosync.pid" "$L/n$i/corosync.stdout" tn$ID-n$i "$L/n$i/etc" "$L/n$i/run" \
      "corosync -f -c /etc/corosync/corosync.conf"
  done ;;
start-qdevices)
  for i in 1 2; do
    mkdir -p "$L/n$i/run/corosync-qdevice"
    start_bg "$L/n$i/qdevice.pid" "$L/n$i/qdevice.log" tn$ID-n$i "$L/n$i/etc" "$L/n$i/run" \
      "corosync-qdevice -f -d"
  done ;;
arbiter-status)
  if [ "$ARB" = qnetd ]; then
    ip netns exec $SW corosync-qnetd-tool -l -v -p "$L/arb/run/corosync-qnetd/corosync-qnetd.sock"
  else
    "$TWONODE" arbiter status --socket "$L/arb/run/twonode-arbiter.sock"
  fi ;;
arbiter-status-json)
  "$TWONODE" --json arbiter status --socket "$L/arb/run/twonode-arbiter.sock" ;;
holder)  # prints the node id that holds the arbiter's vote (ACK), or nothing
  for i in 1 2; do
    if ip netns exec tn$ID-n$i corosync-quorumtool -s 2>/dev/null | grep -q '(local)' &&
       ip netns exec tn$ID-n$i corosync-quorumtool -s 2>/dev/null | awk '/\(local\)/{print $3}' | grep -q '^A,V'; then
      echo $i
    fi
  done ;;
down)
  for i in 1 2; do kill_pidfile "$L/n$i/qdevice.pid"; kill_pidfile "$L/n$i/corosync.pid"; done
  kill_pidfile "$L/arb/arbiter.pid"
  for ns in $SW $N1 $N2; do ip netns del $ns 2>/dev/null || true; done
  log "down" ;;
*) echo "lab.sh: unknown command $CMD" >&2; exit 2 ;;
esac
