#!/bin/bash
# hostile.sh [--seconds N] [--json FILE] — hostile peers (issue 13, item 3), with figures. The
# real tuapd and the shipped agent (chrooted) in two namespaces (the layout of
# tests/integration/test_agent_hostile.sh, which checks each refusal one by one); here the
# point is how tuapd holds up under a flood of them.
#   - example.test (domain B) is provisioned with its real agent; probe.test (domain A) is
#     enrolled, and its valid key is the attacker's: tests/stress/hostile.py floods tuapd from
#     the site's namespace for N seconds (default 60) with every kind of message an agent
#     must not send (see hostile.py), on 8 connections, plus connections with unknown keys;
#   - a local user outside tuapd's control group runs tuap-ctl status (refused);
#   - before and during the flood: the latency of `tuap-ctl status` (30 samples each) and of
#     `tuap-ctl run example.test make` through the real agent (8 samples each); p50, p99 and
#     the ratio during/before;
#   - after it: tuapd still answers, its RSS (VmRSS, VmHWM), no job for probe.test, make of
#     example.test ran exactly as often as it was asked.
# Prints the figures; exits 1 when tuapd dies, a hostile message is accepted (a job or a step
# for the attacker), the outsider gets an answer, or a latency during the flood exceeds 5 s.
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/chroot.sh"
. "$src/tests/lib/tuap.sh"

seconds=60
jout=
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) seconds=${2:?}; shift 2 ;;
	--json) jout=${2:?}; shift 2 ;;
	*) echo "hostile.sh: unexpected '$1'" >&2; exit 2 ;;
	esac
done
skip_unless_root
skip_unless_netns
skip_unless_cmd debootstrap setpriv
tuap_need_bins
"$TUAPT_PY" -c 'import zmq' 2>/dev/null || tuapt_skip "python3-zmq is not installed"
RUNS=/var/lib/tuap-stress-hostile-runs
MAXMSG=1048576

agent_host_setup
phase provision
agent_up example.test "max_message = $MAXMSG;"
site_copy "$W/sites"
S=$W/sites/example.test
sed -i '/^packages=/d' "$S/provision.conf"
printf 'all:\n\techo run >>%s\n' "$RUNS" >"$S/site/Makefile"
ctl pack "$S" >/dev/null
ctl provision --existing --json "$S" >"$W/good.jsonl" 2>"$W/logs/good.err" ||
	{ tail -n 20 "$W/good.jsonl" "$W/logs/good.err" >&2; tuapt_die "the provision failed"; }
GOOD_JOB=$("$TUAPT_PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["job"])' "$W/good.jsonl")
asked=1
ctl enroll probe.test -o "$W/probe.conf" >/dev/null

# sample NAME COUNT CMD...: COUNT timings of CMD (seconds, one per line) into W/lat-NAME
sample() {
	local name=$1 count=$2 t0 k
	shift 2
	for k in $(seq "$count"); do
		t0=$(now)
		"$@" >/dev/null 2>&1 || tuapt_die "$name: '$*' failed"
		echo "$(now) $t0" | awk '{printf "%.4f\n", $1 - $2}' >>"$W/lat-$name"
	done
}
run_make() { ctl run example.test make; }
pct() { sort -n "$W/lat-$1" | awk -v p="$2" '{a[NR] = $1} END {i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print a[i]}'; }

phase before
sample status-before 30 ctl status
sample make-before 8 run_make
asked=$((asked + 8))

phase flood
timeout $((seconds + 60)) ip netns exec "$H" "$TUAPT_PY" "$here/hostile.py" attack "$W/probe.conf" \
	"$GOOD_JOB" "$MAXMSG" "$seconds" 8 "$W/attack.json" >"$W/logs/attack.log" 2>&1 &
ATTACK=$!
pid_record "$ATTACK"
sleep 2
sample status-during 30 ctl status
sample make-during 8 run_make
asked=$((asked + 8))
rc=0
wait "$ATTACK" || rc=$?
[ "$rc" = 0 ] || { tail -n 20 "$W/logs/attack.log" >&2; tuapt_die "hostile.py exited $rc"; }

phase outsider
outsider=refused
if setpriv --reuid=65534 --regid=65534 --clear-groups env TUAP_SOCKET="$TUAP_SOCKET" \
	timeout 10 "$TUAP_CTL" status >"$W/outsider.out" 2>&1; then
	outsider=answered
fi

phase after
kill -0 "$TUAPD_PID" 2>/dev/null || tuapt_die "tuapd died under the flood"
tuapd_status_ok || tuapt_die "tuapd stopped answering after the flood"
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$TUAPD_PID/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$TUAPD_PID/status")
ctl status --json >"$W/status-after.json"
probe_jobs=$("$TUAPT_PY" - "$W/status-after.json" <<'EOF'
import json, sys
n = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    for d in e.get("domains", []) if e.get("type") == "status" else []:
        if d.get("domain") == "probe.test" and d.get("job_id"):
            n += 1
print(n)
EOF
)
runs=$(grep -c . "$R$RUNS")
tuapd_stop "$TUAPD_PID" "$W/d"
phase

attempts=$("$TUAPT_PY" -c 'import json,sys; print(sum(json.load(open(sys.argv[1]))["attempts"].values()))' "$W/attack.json")
echo "hostile peers: attempts by kind (answers: Error codes tuapd sent back; the rest were dropped):"
"$TUAPT_PY" - "$W/attack.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for k, v in sorted(d["attempts"].items()):
    print("hostile peers:   %-36s %8d" % (k, v))
print("hostile peers:   answers %s" % json.dumps(d["answers"], sort_keys=True))
EOF
bad=0
s_b99=$(pct status-before 99) s_d99=$(pct status-during 99) m_b99=$(pct make-before 99) m_d99=$(pct make-during 99)
s_ratio=$(awk -v a="$s_d99" -v b="$s_b99" 'BEGIN {printf "%.2f", a / (b > 0 ? b : 0.001)}')
m_ratio=$(awk -v a="$m_d99" -v b="$m_b99" 'BEGIN {printf "%.2f", a / (b > 0 ? b : 0.001)}')
echo "hostile peers: $attempts hostile messages in ${seconds}s, none accepted (jobs of probe.test: $probe_jobs; make of example.test ran $runs times for $asked asked); outsider on the ctl socket: $outsider"
echo "hostile peers: tuap-ctl status p99 ${s_d99}s during the flood vs ${s_b99}s before: ratio $s_ratio (p50 $(pct status-during 50)s vs $(pct status-before 50)s)"
echo "hostile peers: run make through the real agent p99 ${m_d99}s during vs ${m_b99}s before: ratio $m_ratio (p50 $(pct make-during 50)s vs $(pct make-before 50)s)"
asan=
! ldd "$TUAPD" 2>/dev/null | grep -q libasan || asan=" (an ASan build: the RSS holds ASan's quarantine of freed memory; a Release build's is the figure)"
echo "hostile peers: tuapd RSS after ${rss} KiB (peak ${hwm} KiB)$asan"
[ "$probe_jobs" = 0 ] || bad=1
[ "$runs" = "$asked" ] || bad=1
[ "$outsider" = refused ] || bad=1
awk -v a="$s_d99" -v b="$m_d99" 'BEGIN {exit !(a > 5 || b > 5)}' && bad=1
if [ -n "$jout" ]; then
	"$TUAPT_PY" - "$jout" "$W/attack.json" <<EOF
import json, sys
a = json.load(open(sys.argv[2]))
a.update({"seconds": $seconds, "outsider": "$outsider", "probe_jobs": $probe_jobs,
          "make_runs": $runs, "make_asked": $asked, "status_p99_before": $s_b99,
          "status_p99_during": $s_d99, "make_p99_before": $m_b99, "make_p99_during": $m_d99,
          "rss_kib": $rss, "hwm_kib": $hwm})
json.dump(a, open(sys.argv[1], "w"), indent=1)
EOF
fi
[ "$bad" = 0 ]
