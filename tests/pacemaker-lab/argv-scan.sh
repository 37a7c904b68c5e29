#!/bin/bash
# argv-scan.sh SECRET_FILE OUT : until killed, scan every process's argv (/proc/*/cmdline) every
# ~50 ms for the secret in SECRET_FILE; append "epoch_ms pid argv" lines to OUT for each hit and
# count the scans in OUT.scans. The secret never appears in this script's own argv.
pw=$(cat "$1"); out=$2; n=0
exec 2>/dev/null
while true; do
  for f in /proc/[0-9]*/cmdline; do
    mapfile -d '' -t a < "$f" 2>/dev/null || continue
    c="${a[*]}"
    if [[ -n $c && $c == *"$pw"* ]]; then
      p=${f#/proc/}; echo "$(date +%s%3N) ${p%/cmdline} ${c//$pw/<SECRET>}" >> "$out"
    fi
  done
  n=$((n + 1)); echo $n > "$out.scans"
  sleep 0.05
done
