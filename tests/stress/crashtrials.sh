#!/bin/bash
# crashtrials.sh [--trials N] [--json FILE] — crash trials (issue 13, item 2): the real tuapd and
# the shipped agent (chrooted in a throwaway Debian root) in two network namespaces joined by a
# throttled veth (the layout of tests/integration/test_agent_faults.sh). The site carries 24 MiB
# of random data, a VERSION file and a Makefile that checks every blob's sha256 and writes
# "VERSION start" and "VERSION end" (2 s apart) to a counter file.
#
# A first update-data without a kill measures a job's duration T. Then each trial packs a new
# VERSION, starts `tuap-ctl update-data`, kills tuapd or the agent (alternately) with SIGKILL
# at a moment drawn uniformly from [0, T], starts it again, and follows the job to its end
# (tuap-ctl watch, then status). A trial is good when:
#   - the job ends (no job stuck past its deadline), and
#   - it is done with make run exactly once for this VERSION (one start, one end), or it
#     failed in the documented interrupted state (make killed with the agent: "make ...
#     interrupted", at most one start, never run again by itself), or the kill came before
#     tuapd had taken the request (no job: tuap-ctl said so) and a plain re-run is then done;
#   - the site tree is one whole version, never a mix: when the job is done it is this
#     VERSION and every blob's sha256 holds (bytes lost: the bytes of files that do not);
#   - tuapd replays every journal on restart (no "cannot replay the journal").
# Prints the figures and exits 1 when a trial is not good. Needs root, netns, tc, debootstrap.
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/chroot.sh"
. "$src/tests/lib/tuap.sh"

trials=100
jout=
while [ $# -gt 0 ]; do
	case $1 in
	--trials) trials=${2:?}; shift 2 ;;
	--json) jout=${2:?}; shift 2 ;;
	*) echo "crashtrials.sh: unexpected '$1'" >&2; exit 2 ;;
	esac
done

skip_unless_root
skip_unless_netns
skip_unless_cmd debootstrap tc
tuap_need_bins
RUNS=/var/lib/tuap-stress-make-runs # in the chroot
MIB=$((1024 * 1024))
JOB_DEADLINE=${TUAP_TRIAL_DEADLINE:-180}

agent_host_setup
phase tuapd
agent_up example.test

phase site
site_copy "$W/sites"
S=$W/sites/example.test
sed -i '/^packages=/d' "$S/provision.conf"
rm -rf "$S/site"
mkdir -p "$S/site/blob"
for i in 1 2 3; do head -c $((8 * MIB)) /dev/urandom >"$S/site/blob/$i.bin"; done
cat >"$S/site/Makefile" <<EOF
# crashtrials.sh: checks its tree, and counts its runs per VERSION
all:
	sha256sum --check --quiet blob.sha256
	echo "\$\$(cat VERSION) start" >>$RUNS
	sleep 2
	echo "\$\$(cat VERSION) end" >>$RUNS
EOF
# pack_version N: the site at VERSION N (the blobs' hashes include VERSION's)
pack_version() {
	echo "$1" >"$S/site/VERSION"
	(cd "$S/site" && sha256sum VERSION blob/*.bin >blob.sha256)
	ctl pack "$S" >/dev/null
}
pack_version 0
ctl provision --existing --json "$S" >"$W/logs/provision.jsonl" 2>&1 ||
	{ tail -n 20 "$W/logs/provision.jsonl" >&2; tuapt_die "the first provision failed"; }
# ~80 Mbit/s: the 24 MiB take ~2.5 s, so kills land in the transfer as well as in make
ip netns exec "$C" tc qdisc add dev veth-c root tbf rate 80mbit burst 256kb latency 400ms

status_json() { ctl status --json example.test 2>/dev/null >"$W/status.json"; }
# job_fact KEY: from the last status_json
job_fact() {
	"$TUAPT_PY" - "$W/status.json" "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("type") == "status":
        for d in e.get("domains", []):
            if d.get("domain") == "example.test":
                print(d.get(sys.argv[2], ""))
EOF
}
job_ended() { status_json && case "$(job_fact job)" in done | failed) true ;; *) false ;; esac; }
runs_of() { grep -c "^$1 $2\$" "$R$RUNS" 2>/dev/null || true; }

phase baseline
pack_version 1
t0=$(now)
ctl update-data --json "$S" >"$W/logs/baseline.jsonl" 2>&1 ||
	{ tail -n 20 "$W/logs/baseline.jsonl" >&2; tuapt_die "the baseline update-data failed"; }
T=$(secs_since "$t0")
[ "$(runs_of 1 start)" = 1 ] || tuapt_die "the baseline's make ran $(runs_of 1 start) times"
tuapt_log "a job (update-data: upload, hello, packages, data, make) takes ${T}s"

# died NAME LOG: NAME was to be killed but had already exited by itself
died() {
	tail -n 30 "$2" >&2
	tuapt_die "$1 was not running when the trial came to kill it: it exited by itself (log above)"
}
trap 'tuapt_log "failed in trial $((i - 1)) at line $LINENO"' ERR

good=0 bad=0 done_jobs=0 interrupted=0 no_job=0 stuck=0 lost_bytes=0 unreadable=0
killed_tuapd=0 killed_agent=0
: >"$W/trials.txt"
for i in $(seq 2 $((trials + 1))); do
	phase "trial-$((i - 1))"
	pack_version "$i"
	status_json || true
	prev_job=$(job_fact job_id)
	delay=$("$TUAPT_PY" -c "import random; print('%.2f' % random.uniform(0, $T))")
	if [ $((i % 2)) = 0 ]; then victim=tuapd; else victim=agent; fi
	timeout "$JOB_DEADLINE" "$TUAP_CTL" update-data --json "$S" >"$W/logs/trial-$i.jsonl" 2>&1 &
	prov=$!
	sleep "$delay"
	if [ "$victim" = tuapd ]; then
		kill -9 "$TUAPD_PID" 2>/dev/null || died tuapd "$W/d/tuapd.log"
		wait "$TUAPD_PID" 2>/dev/null || true
		killed_tuapd=$((killed_tuapd + 1))
		tuapd_start "$C" "$W/d" TUAPD_PID || tuapt_die "tuapd did not come back after the kill"
	else
		kill -9 "$AGENT_PID" 2>/dev/null || died tuap-agent "$W/logs/agent.log"
		wait "$AGENT_PID" 2>/dev/null || true
		killed_agent=$((killed_agent + 1))
		agent_start "$H" "$R" AGENT_PID "$W/logs/agent.log"
	fi
	rc=0
	wait "$prov" || rc=$?
	why=
	status_json || true
	job=$(job_fact job_id)
	if [ "$job" = "$prev_job" ]; then
		# the kill came before tuapd took the request: the operator runs it again
		outcome=no-job
		no_job=$((no_job + 1))
		ctl update-data --json "$S" >"$W/logs/trial-$i.rerun.jsonl" 2>&1 || why="the re-run failed"
		status_json || true
	else
		wait_for "job $job to end" "$JOB_DEADLINE" job_ended || {
			stuck=$((stuck + 1))
			why="stuck in $(job_fact phase)"
		}
		outcome=$(job_fact job)
	fi
	starts=$(runs_of "$i" start)
	ends=$(runs_of "$i" end)
	state=$(job_fact job)
	if [ -z "$why" ] && [ "$state" = done ]; then
		[ "$outcome" = no-job ] || done_jobs=$((done_jobs + 1))
		[ "$starts" = 1 ] && [ "$ends" = 1 ] || why="make ran $starts times ($ends ended)"
		tree=$R/srv/tuap/example.test
		[ "$(cat "$tree/VERSION" 2>/dev/null)" = "$i" ] || why="${why:-the tree is version $(cat "$tree/VERSION" 2>/dev/null)}"
		if ! (cd "$tree" && sha256sum --check --quiet blob.sha256 >/dev/null 2>&1); then
			lost=$(cd "$tree" && sha256sum --check blob.sha256 2>/dev/null | awk -F': ' '$2 != "OK" {print $1}' |
				while read -r f; do stat -c %s "$f" 2>/dev/null || echo 0; done | awk '{n += $1} END {print n + 0}')
			lost_bytes=$((lost_bytes + lost))
			why="${why:-$lost bytes lost}"
		fi
	elif [ -z "$why" ] && [ "$state" = failed ] && grep -q "interrupted" "$W/logs/trial-$i.jsonl" "$W/d/tuapd.log" &&
		[ "$starts" -le 1 ]; then
		interrupted=$((interrupted + 1))
		outcome=interrupted
	elif [ -z "$why" ]; then
		final=$(grep -h '"final"' "$W/logs/trial-$i.jsonl" 2>/dev/null | tail -n 1 | cut -c1-200 || true)
		why="job '${state:-?}' in phase '$(job_fact phase)': ${final:-no final event from tuap-ctl (exit $rc)}"
	fi
	if grep -q "cannot replay the journal" "$W/d/tuapd.log"; then
		unreadable=$((unreadable + 1))
		why="${why:-a journal tuapd cannot replay}"
		sed -i 's/cannot replay the journal/(counted) journal not replayed/' "$W/d/tuapd.log"
	fi
	if [ -z "$why" ]; then good=$((good + 1)); else bad=$((bad + 1)); fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$((i - 1))" "$victim" "$delay" "$outcome" "$starts" "$ends" \
		"${why:-ok}" | tee -a "$W/trials.txt"
	[ -z "$why" ] || tail -n 5 "$W/logs/trial-$i.jsonl" >&2
done
phase
tuapd_stop "$TUAPD_PID" "$W/d"

echo "crash trials: $trials trials (tuapd killed $killed_tuapd, agent killed $killed_agent, at U(0, ${T}s)): $good good, $bad not"
echo "crash trials: jobs done $done_jobs, interrupted (documented) $interrupted, kill before the job $no_job (re-run done), stuck $stuck"
echo "crash trials: make runs per done job: exactly 1 in every good trial; bytes lost $lost_bytes; journals not replayed $unreadable"
if [ -n "$jout" ]; then
	"$TUAPT_PY" - "$jout" "$W/trials.txt" <<EOF
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
json.dump({"trials": $trials, "good": $good, "bad": $bad, "done": $done_jobs,
           "interrupted": $interrupted, "no_job": $no_job, "stuck": $stuck,
           "bytes_lost": $lost_bytes, "journals_unreadable": $unreadable, "job_seconds": $T,
           "rows": [dict(zip(["trial", "victim", "delay_s", "outcome", "make_starts",
                              "make_ends", "why"], r)) for r in rows]},
          open(sys.argv[1], "w"), indent=1)
EOF
fi
[ "$bad" = 0 ]
