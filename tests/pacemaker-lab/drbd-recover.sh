#!/bin/bash
# drbd-recover.sh ID DIR
# `twonode drbd recover` against a LIVE two-node pacemaker (lab.sh: corosync + pacemaker per node in
# its own namespaces), for what a CIB file cannot show: crm_mon/cibadmin read live over the node,
# `crm_resource --cleanup` really clearing a recorded failure, and pacemaker promoting the survivor
# by itself after the hand-back.
#
# The DRBD side is the lab's simulator (`twonode lab drbd-kernel`, the real drbdadm on it), reached
# as lab:DIR nodes from inside n1. No DRBD kernel runs here, so the real ocf:linbit:drbd agent
# cannot; in each node's private mount namespace its path is bound to pacemaker's own promotable
# test agent ocf:pacemaker:Stateful (a stand-in for the agent, not for pacemaker: the promotion
# scores, monitors, promotion and clean-up are pacemaker's). Fencing is off (no BMCs needed).
# Prints RESULT lines; the lab is torn down on exit.
set -uo pipefail
ID=$1; L=$2
HERE=$(cd "$(dirname "$0")" && pwd)
lab() { "$HERE/lab.sh" "$ID" "$L" "$@"; }
cleanup() { lab down >/dev/null 2>&1; }
trap cleanup EXIT
trap "exit 130" INT TERM

wait_for() { # wait_for SECONDS CMD... : until CMD succeeds
  local end=$(( $(date +%s) + $1 )); shift
  while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}
online() { lab x 1 crm_mon -1 2>/dev/null | grep -q 'Online: \[ n1 n2 \]' && lab x 2 crm_mon -1 2>/dev/null | grep -q 'Online: \[ n1 n2 \]'; }
promoted_n1() { lab x 1 crm_resource --locate --resource drbd-r0-clone 2>/dev/null | grep -q 'on: n1 Promoted'; }
has_failure() { lab x 1 crm_mon -1 --output-as=xml 2>/dev/null | grep -q '<failure op_key="drbd-r0_'; }

lab up >/dev/null 2>"$L.up.err" || { cat "$L.up.err" >&2; echo "RESULT scenario=setup error=lab-up"; exit 1; }
printf '#!/bin/sh\n# stand-in for ocf:linbit:drbd in the pacemaker lab (no DRBD kernel here)\nexec /usr/lib/ocf/resource.d/pacemaker/Stateful "$@"\n' > "$L/drbd-agent"
chmod 755 "$L/drbd-agent"
lab boot 1; lab boot 2
for i in 1 2; do lab x "$i" mount --bind "$L/drbd-agent" /usr/lib/ocf/resource.d/linbit/drbd || { echo "RESULT scenario=setup error=agent-bind"; exit 1; }; done
wait_for 150 online || { echo "RESULT scenario=setup error=never-online"; lab x 1 crm_mon -1 >&2; exit 1; }
lab x 1 crm_attribute --type crm_config --name stonith-enabled --update false
# the clone and the constraint crm-fence-peer.9.sh on n1 writes (raw XML: pcs would validate
# drbd_resource against the stand-in's metadata)
lab x 1 cibadmin --create -o resources -X '<clone id="drbd-r0-clone"><primitive id="drbd-r0" class="ocf" provider="linbit" type="drbd"><instance_attributes id="drbd-r0-ia"><nvpair id="drbd-r0-ia-res" name="drbd_resource" value="r0"/></instance_attributes><operations><op id="drbd-r0-mon-p" name="monitor" interval="9s" role="Promoted"/><op id="drbd-r0-mon-u" name="monitor" interval="11s" role="Unpromoted"/></operations></primitive><meta_attributes id="drbd-r0-clone-meta"><nvpair id="drbd-r0-clone-promotable" name="promotable" value="true"/><nvpair id="drbd-r0-clone-pmax" name="promoted-max" value="1"/><nvpair id="drbd-r0-clone-notify" name="notify" value="true"/></meta_attributes></clone>' || { echo "RESULT scenario=setup error=clone"; exit 1; }
lab x 1 cibadmin --create -o constraints -X '<rsc_location rsc="drbd-r0-clone" id="drbd-fence-by-handler-r0-drbd-r0-clone"><rule role="Master" score="-INFINITY" id="drbd-fence-by-handler-r0-rule-drbd-r0-clone"><expression attribute="#uname" operation="ne" value="n1" id="drbd-fence-by-handler-r0-expr-drbd-r0-clone"/></rule></rsc_location>'
wait_for 90 promoted_n1 || { echo "RESULT scenario=setup error=never-promoted"; lab x 1 crm_mon -1 >&2; exit 1; }
# a failure recorded on n2, as the victim's demotion leaves one: what the clean-up must clear
lab x 1 crm_resource --fail --resource drbd-r0 --node n2 >/dev/null 2>&1
wait_for 30 has_failure || { echo "RESULT scenario=setup error=no-failure-recorded"; lab x 1 crm_mon -1 >&2; exit 1; }
wait_for 60 promoted_n1
echo "RESULT scenario=setup promoted=n1 failure_on_n2=yes"

# the DRBD split brain on the simulator: n1 kept the service, n2 wrote by mistake and was demoted
SIM="$L/sim"
"$TWONODE" lab drbd-kernel --state "$SIM" init --nodes n1,n2 >/dev/null &&
  "$TWONODE" lab drbd-kernel --state "$SIM" scenario split-brain --primary n1 --primary n2 --writes n1=4000 --writes n2=40 --demote n2 >/dev/null ||
  { echo "RESULT scenario=setup error=drbd-sim"; exit 1; }

lab x 1 cibadmin -Q > "$L/cib-before.xml"
lab x 1 env TWONODE_JOURNAL_DIR="$L/journal" "$TWONODE" --json drbd recover r0 --discard n2 --yes --cib live \
  --node "n1=lab:$SIM" --node "n2=lab:$SIM" --promote-timeout 90 > "$L/recover.json" 2> "$L/recover.err"
rc=$?
lab x 1 cibadmin -Q > "$L/cib-after.xml"
lab x 1 crm_mon -1 --output-as=xml > "$L/crm_mon-after.xml"
steps=$(sed -n 's/.*"event":"step".*"status":"\(done\|skipped\)".*"step":"\([^"]*\)".*/\2/p; s/.*"event":"step".*"step":"\([^"]*\)".*"status":"\(done\|skipped\)".*/\1/p' "$L/recover.json" | paste -sd, -)
managed=$(grep -c 'id="drbd-r0-clone"[^>]*managed="true"' "$L/crm_mon-after.xml")
failures=$(grep -c '<failure op_key="drbd-r0_' "$L/crm_mon-after.xml")
constraint=$(grep -c 'drbd-fence-by-handler-r0-drbd-r0-clone' "$L/cib-after.xml")
promoted=no; promoted_n1 && promoted=n1
echo "RESULT scenario=recover rc=$rc steps=$steps clone_managed=$managed failures_after=$failures constraint_after=$constraint promoted=$promoted"
[ "$rc" = 0 ] || { cat "$L/recover.json" "$L/recover.err" >&2; }
