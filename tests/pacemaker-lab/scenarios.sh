#!/bin/bash
# scenarios.sh ID DIR
# Build one pacemaker lab (lab.sh), then run the scenarios and print one RESULT line each:
#   agent          stonith_admin --list-installed / --metadata accept fence_twonode (inside a node;
#                  and the host's /usr/sbin was not touched)
#   configure      two stonith devices (pcs -f on the live CIB + pcs cluster cib-push), both Started
#   crm-simulate   crm_simulate -x on the live CIB with --node-fail n1 / n2: what pacemaker decides
#   reboot         stonith_admin --reboot n2 from n1: BMC n2 off then on, argv scanned for the password
#   ring-cut-delay two_node, pcmk_delay_base=3 + pcmk_delay_max=8 on fence-n1 (the device that shoots
#                  n1): ring link of n1 cut: exactly one node fenced (expected n2), seen on the BMCs
#   ring-cut-delay-dc  the delay on the device that shoots the non-DC node instead: exactly one
#                  node fenced (expected: the DC), so the delay decides, not who was DC
#   ring-cut-qdevice  two_node off, corosync-qdevice + `twonode arbiter serve` (ffsplit, tie_breaker
#                  lowest), no delays: ring cut: exactly one node fenced (expected n2)
# A power watcher couples each BMC to its node: power off kills the node's processes, power on boots
# it (so a fenced node really stops, and a rebooted node comes back as a real one would).
set -uo pipefail
ID=$1; L=$2
HERE=$(cd "$(dirname "$0")" && pwd)
lab() { "$HERE/lab.sh" "$ID" "$L" "$@"; }
now() { date +%s%3N; }
SW=tnpm$ID-sw
SCAN=""
cleanup() {
  [ -n "$SCAN" ] && kill "$SCAN" 2>/dev/null
  lab down >/dev/null 2>&1
}
trap cleanup EXIT
trap "exit 130" INT TERM
note() { echo "$(now) $*" >> "$L/events"; echo "pmlab[$ID] $*" >&2; }

wait_online() { # both nodes see "Online: [ n1 n2 ]"; $1 = max seconds
  local end=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    lab x 1 crm_mon -1 2>/dev/null | grep -q 'Online: \[ n1 n2 \]' &&
      lab x 2 crm_mon -1 2>/dev/null | grep -q 'Online: \[ n1 n2 \]' && return 0
    sleep 1
  done
  echo "pmlab[$ID]: not both online after $1 s" >&2
  lab x 1 crm_mon -1 >&2 2>&1; return 1
}

wait_started() { # both stonith devices Started; $1 = max seconds
  local end=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    [ "$(lab x 1 crm_mon -1 2>/dev/null | grep -c 'stonith:fence_twonode.*Started')" = 2 ] && return 0
    sleep 1
  done
  echo "pmlab[$ID]: stonith devices not started after $1 s" >&2
  lab x 1 crm_mon -1 >&2 2>&1; return 1
}

offs_since() { # offs_since N T0_MS : power-off requests BMC N received after T0
  awk -v t0="$2" '$2=="set" && $3=="power" && $4=="0" && $1*1000 >= t0' "$L/bmc$1/state/chassis.log" 2>/dev/null | wc -l
}
first_since() { # first_since N T0_MS VALUE : ms from T0 to BMC N's first "set power VALUE", or -1
  awk -v t0="$2" -v v="$3" '$2=="set" && $3=="power" && $4==v && $1*1000 >= t0 { printf "%d\n", $1*1000 - t0; exit }' \
    "$L/bmc$1/state/chassis.log" 2>/dev/null | grep . || echo -1
}

pcs_change() { # pcs_change PCS-ARGS... : pcs -f on a copy of the live CIB, then cib-push of the diff
  # The BMC password is never an argument: pcs writes the placeholder @BMCPASSWORD@, which bash
  # replaces in the file (builtins only, no argv) before the push.
  lab x 1 cibadmin -Q > "$L/cib-orig.xml" && cp "$L/cib-orig.xml" "$L/cib-edit.xml" &&
    lab x 1 pcs -f "$L/cib-edit.xml" "$@" || return 1
  local x pw; x=$(<"$L/cib-edit.xml"); pw=$(<"$L/bmc-password")
  printf '%s\n' "${x//@BMCPASSWORD@/$pw}" > "$L/cib-edit.xml"
  lab x 1 pcs cluster cib-push "$L/cib-edit.xml" diff-against="$L/cib-orig.xml" >/dev/null
}

ring_cut() { # ring_cut NAME : cut n1's ring link, watch the BMCs for 30 s, heal
  local sc=$1 t0
  sleep 3
  lab x 1 cibadmin -Q > "$L/cib-$sc-before.xml"
  local dc; dc=$(lab x 1 crm_mon -1 2>/dev/null | sed -n 's/.*Current DC: \([^ ]*\).*/\1/p')
  t0=$(now); note "$sc: ring link of n1 cut"
  ip -n $SW link set r-n1 down
  sleep 30
  local o1 o2 f1 f2 q1 q2
  o1=$(offs_since 1 "$t0"); o2=$(offs_since 2 "$t0")
  f1=$(first_since 1 "$t0" 0); f2=$(first_since 2 "$t0" 0)
  q1=$(lab x 1 corosync-quorumtool -s 2>/dev/null | awk -F: '/^Quorate:/{gsub(/ /,"",$2);print $2}')
  q2=$(lab x 2 corosync-quorumtool -s 2>/dev/null | awk -F: '/^Quorate:/{gsub(/ /,"",$2);print $2}')
  local fenced=none
  [ "$o1" -gt 0 ] && fenced=n1
  [ "$o2" -gt 0 ] && fenced=n2
  [ "$o1" -gt 0 ] && [ "$o2" -gt 0 ] && fenced=both
  lab x 1 stonith_admin --history '*' > "$L/$sc-history.txt" 2>&1
  echo "RESULT scenario=$sc fenced=$fenced bmc1_offs=$o1 bmc2_offs=$o2 bmc1_off_ms=$f1 bmc2_off_ms=$f2" \
    "bmc1_power=$(lab power 1) bmc2_power=$(lab power 2) n1_quorate=${q1:-down} n2_quorate=${q2:-down} dc_before=${dc:-unknown}"
  note "$sc: healing the ring"
  ip -n $SW link set r-n1 up
}

lab up >/dev/null 2>"$L.up.err" || { cat "$L.up.err" >&2; echo "RESULT scenario=setup error=lab-up"; exit 1; }
lab start-bmcs || { echo "RESULT scenario=setup error=bmcs"; exit 1; }
t0=$(now)
lab boot 1; lab boot 2
lab start-power-watch
if ! wait_online 150; then echo "RESULT scenario=setup error=never-online"; exit 1; fi
echo "RESULT scenario=setup online_ms=$(( $(now) - t0 ))"

# agent: visible to the node's fencer, not installed on the host
inst=no; meta=no; host=no
lab x 1 stonith_admin --list-installed 2>/dev/null | grep -qx 'fence_twonode' && inst=yes
lab x 1 stonith_admin --metadata --agent fence_twonode > "$L/fence_twonode.metadata.xml" 2>"$L/metadata.err" &&
  xmllint --noout "$L/fence_twonode.metadata.xml" 2>>"$L/metadata.err" &&
  grep -q '<resource-agent name="fence_twonode"' "$L/fence_twonode.metadata.xml" && meta=yes
stonith_admin --list-installed 2>/dev/null | grep -qx 'fence_twonode' && host=yes
echo "RESULT scenario=agent listed=$inst metadata=$meta host_listed=$host"

# configure: the BMC password goes into the CIB as an instance attribute. From here to the end
# every process's argv is scanned for it (monitors, the reboot, the three ring cuts).
"$HERE/argv-scan.sh" "$L/bmc-password" "$L/argv-hits" & SCAN=$!
if pcs_change stonith create fence-n1 fence_twonode ip=10.77.2.254 ipport=6231 username=admin password=@BMCPASSWORD@ \
     pcmk_host_list=n1 op monitor interval=60s &&
   pcs_change stonith create fence-n2 fence_twonode ip=10.77.2.254 ipport=6232 username=admin password=@BMCPASSWORD@ \
     pcmk_host_list=n2 op monitor interval=60s && wait_started 60; then
  echo "RESULT scenario=configure started=2"
else
  echo "RESULT scenario=configure error=devices-not-started"; exit 1
fi
lab x 1 cibadmin -Q > "$L/cib-configured.xml"
grep -q 'name="password" value="@BMCPASSWORD@"' "$L/cib-configured.xml" && { echo "RESULT scenario=configure error=placeholder-in-cib"; exit 1; }

# crm_simulate on the live CIB: pacemaker's own answer to "a node disappears"
for i in 1 2; do
  crm_simulate -x "$L/cib-configured.xml" -S --node-fail n$i > "$L/crm_simulate-fail-n$i.txt" 2>&1
done
s1=$(grep -c "Fence (reboot) n1 " "$L/crm_simulate-fail-n1.txt"); s2=$(grep -c "Fence (reboot) n2 " "$L/crm_simulate-fail-n2.txt")
echo "RESULT scenario=crm-simulate fail_n1_fences_n1=$s1 fail_n2_fences_n2=$s2"

# reboot: stonith_admin from n1
h0=0; [ -f "$L/argv-hits" ] && h0=$(wc -l < "$L/argv-hits")
s0=$(cat "$L/argv-hits.scans" 2>/dev/null || echo 0)
t0=$(now); note "reboot: stonith_admin --reboot n2"
lab x 1 stonith_admin --reboot n2 --timeout 60 >"$L/reboot.out" 2>&1; rc=$?
dur=$(( $(now) - t0 ))
sleep 1
hits=0; [ -f "$L/argv-hits" ] && hits=$(( $(wc -l < "$L/argv-hits") - h0 ))
echo "RESULT scenario=reboot rc=$rc duration_ms=$dur bmc2_off_ms=$(first_since 2 "$t0" 0) bmc2_on_ms=$(first_since 2 "$t0" 1)" \
  "bmc1_offs=$(offs_since 1 "$t0") bmc2_power=$(lab power 2) argv_hits=$hits argv_scans=$(( $(cat "$L/argv-hits.scans" 2>/dev/null || echo 0) - s0 ))"
wait_online 120 || { echo "RESULT scenario=ring-cut-delay error=n2-not-back"; exit 1; }
wait_started 60

# ring cut under two_node: the device that fences n1 waits 3..8 s, n1 shoots first
pcs_change stonith update fence-n1 pcmk_delay_base=3 pcmk_delay_max=8
ring_cut ring-cut-delay
wait_online 120 || { echo "RESULT scenario=ring-cut-delay-dc error=not-back-after-delay-cut"; exit 1; }
wait_started 60

# the same, but the delay goes on the device that shoots the node which is NOT the DC: both halves
# request their fence within ~50 ms; the DC's fencer waits 3..8 s, so the other side shoots the DC
dc=$(lab x 1 crm_mon -1 2>/dev/null | sed -n 's/.*Current DC: n\([12]\).*/\1/p')
nondc=$((3 - ${dc:-1}))
pcs_change stonith update fence-n1 pcmk_delay_base= pcmk_delay_max=
pcs_change stonith update fence-n$nondc pcmk_delay_base=3 pcmk_delay_max=8
echo "RESULT scenario=ring-cut-delay-dc-setup dc=n${dc:-?} delayed_device=fence-n$nondc expected_fenced=n${dc:-?}"
ring_cut ring-cut-delay-dc
wait_online 120 || { echo "RESULT scenario=ring-cut-qdevice error=not-back-after-delay-dc-cut"; exit 1; }
pcs_change stonith update fence-n$nondc pcmk_delay_base= pcmk_delay_max=

# ring cut with the arbiter as quorum device (two_node off), no delays anywhere
lab halt 1; lab halt 2
lab conf qdevice
lab start-arbiter
t0=$(now)
lab boot 1; lab boot 2
if ! wait_online 150; then echo "RESULT scenario=ring-cut-qdevice error=never-online"; exit 1; fi
end=$(( $(date +%s) + 60 ))
while [ "$(date +%s)" -lt "$end" ]; do
  lab x 1 corosync-quorumtool -s 2>/dev/null | grep -q '^Total votes: *3' &&
    lab x 2 corosync-quorumtool -s 2>/dev/null | grep -q '^Total votes: *3' && break
  sleep 1
done
wait_started 60
echo "RESULT scenario=qdevice-setup online_ms=$(( $(now) - t0 )) votes_n1=$(lab x 1 corosync-quorumtool -s | awk -F: '/^Total votes/{gsub(/ /,"",$2);print $2}')"
ring_cut ring-cut-qdevice
online=no; wait_online 120 && online=yes
kill "$SCAN" 2>/dev/null; wait "$SCAN" 2>/dev/null; SCAN=""
hits=0; [ -f "$L/argv-hits" ] && hits=$(wc -l < "$L/argv-hits")
echo "RESULT scenario=end both_online=$online argv_hits_total=$hits argv_scans_total=$(cat "$L/argv-hits.scans" 2>/dev/null || echo 0)"
