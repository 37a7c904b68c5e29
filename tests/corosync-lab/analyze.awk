# analyze.awk: quorum timeline metrics for one scenario window.
# Input: merged monitor samples "epoch_ms node quorate(Yes|No|ERR) nodes votes", sorted by time.
# Variables: t0 (event, epoch ms), t1 (end of window), winner (1, 2, or "both").
# A node's state holds from one sample to its next. Output (one line, key=value):
#   overlap_ms     both nodes quorate while each sees only itself (two partitions quorate)
#   noquorum_ms    neither node quorate
#   failover_ms    from t0 until the expected winner is quorate alone (or both quorate together
#                  for winner=both) and stays so until t1; -1 if never
#   loser_drop_ms  from t0 until the other node is non-quorate for good; -1 if never
#   timeline       compact history of (q1,q2) changes as +ms:Q1Q2 (Y/N; lower-case = alone)
function upd(t,   dt, both, none) {
  if (t > t1) t = t1
  if (t <= last) return
  dt = t - last
  if (known[1] && known[2]) {
    both = (q[1] == "Yes" && q[2] == "Yes" && m[1] == 1 && m[2] == 1)
    none = (q[1] != "Yes" && q[2] != "Yes")
    if (both) overlap += dt
    if (none) noq += dt
  }
  last = t
}
function code(n) { return (q[n] == "Yes" ? (m[n] == 1 ? "y" : "Y") : (q[n] == "No" ? (m[n] == 1 ? "n" : "N") : "?")) }
function good(n) {
  if (winner == "both") return (q[1] == "Yes" && q[2] == "Yes" && m[1] == 2 && m[2] == 2)
  return (q[n] == "Yes" && m[n] == 1)
}
BEGIN { last = t0; overlap = 0; noq = 0; fo = -1; ld = -1; tl = ""; prev = "" }
{
  t = $1 + 0; n = substr($2, 2) + 0
  if (t < t0) { q[n] = $3; m[n] = $4 + 0; known[n] = 1; next }
  if (t > t1) exit
  upd(t)
  q[n] = $3; m[n] = $4 + 0; known[n] = 1
  w = (winner == "both") ? 1 : winner + 0
  l = (winner == "both") ? 0 : 3 - w
  okw = good(w)
  if (okw && fo < 0) fo = t - t0
  if (!okw) fo = -1
  if (l) {
    okl = (q[l] != "Yes")
    if (okl && ld < 0) ld = t - t0
    if (!okl) ld = -1
  }
  s = code(1) code(2)
  if (s != prev) { tl = tl sprintf(" +%d:%s", t - t0, s); prev = s }
}
END {
  upd(t1)
  if (winner == "both") ld = 0
  printf "overlap_ms=%d noquorum_ms=%d failover_ms=%d loser_drop_ms=%d timeline=%s\n", overlap, noq, fo, ld, substr(tl, 2)
}
