#!/bin/bash
# test_agent_faults.sh — crashes in the middle of a job, with the real tuapd and the shipped agent
# chrooted in a throwaway Debian root (same layout as test_agent_chroot.sh, without packages):
#   1. agent killed during the data transfer: example.test with ~96 MiB of random files, the
#      link from tuapd's namespace throttled (tc tbf) so the transfer takes seconds; once the
#      agent has confirmed its first 64 MiB (data.mark) and before the end, kill -9 the agent
#      and start it again. The job resumes (the setup log says from which byte: the confirmed
#      64 MiB, not 0), the sha256 the agent verified is the tarball's, the extracted tree is
#      identical to the source (make itself checks every blob's sha256 too), make ran once, the
#      job ends done and the `provision --json` that followed it all exits 0.
#   2. tuapd killed during make: update-data with a Makefile that counts its runs and sleeps;
#      once make has started, kill -9 tuapd and start it again. The agent's make goes on under
#      its supervisor, tuapd resumes the job from its journal, the agent reattaches on its
#      hello; make ran once (counter 1, one "make started" in make.log), the job ends done and
#      the setup log has make's last line.
#   3. the same, with tuapd started again only after make has ended: make is not run again.
# Exits 77 when not root or without netns support.
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/chroot.sh"
. "$src/tests/lib/tuap.sh"

skip_unless_root
skip_unless_netns
skip_unless_cmd debootstrap tc
tuap_need_bins
RUNS=/var/lib/tuap-test-make-runs # in the chroot: one line per make run
BLOBS=12                          # x 8 MiB of random data
MIB=$((1024 * 1024))

agent_host_setup

phase tuapd
agent_up example.test

# ------------------------------------------------------------------------------------------
phase data-site
site_copy "$W/sites"
S=$W/sites/example.test
sed -i '/^packages=/d' "$S/provision.conf"
rm -rf "$S/site"
mkdir -p "$S/site/blob"
for i in $(seq -w 1 $BLOBS); do
	head -c $((8 * MIB)) /dev/urandom >"$S/site/blob/$i.bin"
done
(cd "$S/site" && sha256sum blob/*.bin >blob.sha256)
cat >"$S/site/Makefile" <<EOF
# test_agent_faults: checks the tree it was extracted in, and counts its runs
all:
	sha256sum --check --quiet blob.sha256
	@echo "tree verified: \$\$(ls blob | wc -l) blobs"
	echo data-job >>$RUNS
EOF
ctl pack "$S" >/dev/null
size=$(stat -c %s "$S/data.tar.gz")
sha=$(sha256sum "$S/data.tar.gz" | cut -d' ' -f1)
[ "$size" -gt $((80 * MIB)) ] || tuapt_die "data.tar.gz is only $size bytes"

phase data-transfer
# ~80 Mbit/s from tuapd to the agent: the 96 MiB take ~10 s, ~3 s of them after the first 64 MiB
ip netns exec "$C" tc qdisc add dev veth-c root tbf rate 80mbit burst 256kb latency 400ms
timeout 300 "$TUAP_CTL" provision --existing --json "$S" >"$W/data-events.jsonl" 2>"$W/logs/provision-data.err" &
PROV=$!
pid_record "$PROV"
# data.mark is "CONFIRMED_LEN SIZE SHA256": the agent fsyncs and confirms every 64 MiB
mark_len() { local j; j=$(agent_job_dir "$R"); cut -d' ' -f1 "$j/data.mark" 2>/dev/null || echo 0; }
mark_confirmed() { [ "$(mark_len)" -gt 0 ]; }
wait_for "the agent confirming its first 64 MiB" 120 mark_confirmed ||
	{ tail -n 5 "$W/data-events.jsonl" "$W/logs/agent.log" >&2; exit 1; }
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true # our child: reaped at once (quietly)
JOB=$(agent_job_dir "$R")
confirmed=$(mark_len)
spooled=$(stat -c %s "$JOB/data.tar.gz")
tuapt_log "agent killed with $spooled of $size bytes spooled, $confirmed confirmed"
[ "$confirmed" = $((64 * MIB)) ] || tuapt_die "data.mark confirms $confirmed bytes, expected 64 MiB"
[ "$spooled" -lt "$size" ] || tuapt_die "the transfer had ended before the kill ($spooled of $size)"
[ ! -e "$R/srv/tuap/example.test" ] || tuapt_die "the site tree exists before the data arrived"

phase data-resume
agent_start "$H" "$R" AGENT_PID "$W/logs/agent.log"
wait_for "provision --existing to end after the agent's restart" 180 sh -c "! kill -0 $PROV 2>/dev/null" ||
	{ tail -n 5 "$W/data-events.jsonl" "$W/logs/agent.log" >&2; exit 1; }
rc=0
wait "$PROV" || rc=$?
[ "$rc" = 0 ] || { tail -n 20 "$W/data-events.jsonl" "$W/logs/provision-data.err" >&2; tuapt_die "provision exited $rc"; }
ip netns exec "$C" tc qdisc del dev veth-c root
[ "$(json_final "$W/data-events.jsonl")" = 0 ] || tuapt_die "final event: exit '$(json_final "$W/data-events.jsonl")'"
json_phases "$W/data-events.jsonl" | grep -E ':(started|done|failed)$' | tr '\n' ' ' >"$W/phases.txt"
want="upload:started upload:done plan:started plan:done hello:started hello:done users:started users:done packages:started packages:done mail:started mail:done data:started data:done make:started make:done "
[ "$(cat "$W/phases.txt")" = "$want" ] || tuapt_die "phases: $(cat "$W/phases.txt")"
[ "$(agent_job_dir "$R")" = "$JOB" ] || tuapt_die "the restarted agent used another job dir"

phase data-check
ctl log example.test >"$W/setup-data.log"
grep -q "^data| resuming data.tar.gz at byte $((64 * MIB)) of $size\$" "$W/setup-data.log" ||
	{ grep '^data|' "$W/setup-data.log" >&2; tuapt_die "the setup log does not show the resume at 64 MiB"; }
grep -q "^data| data.tar.gz: $size bytes, sha256 $sha verified\$" "$W/setup-data.log" ||
	tuapt_die "the agent did not verify sha256 $sha"
diff -r "$S/site" "$R/srv/tuap/example.test" >&2 || tuapt_die "the extracted tree differs from the site"
grep -q "^make| tree verified: $BLOBS blobs\$" "$W/setup-data.log" || tuapt_die "make did not verify the tree"
[ "$(grep -c . "$R$RUNS")" = 1 ] || tuapt_die "make ran $(grep -c . "$R$RUNS") times"
[ "$(grep -c '^tree verified' "$JOB/make.log")" = 1 ] || tuapt_die "make.log: $(cat "$JOB/make.log")"

# ------------------------------------------------------------------------------------------
phase make-site
rm -rf "$S/site" "$S/data.tar.gz"
mkdir -p "$S/site"
cat >"$S/site/Makefile" <<EOF
# test_agent_faults: a make that takes a while and counts its runs
all:
	@echo "make started"
	echo make-job >>$RUNS
	sleep 8
	@echo "make finished"
EOF
ctl pack "$S" >/dev/null

phase make-start
timeout 300 "$TUAP_CTL" update-data --json "$S" >"$W/make-events.jsonl" 2>"$W/logs/update-data.err" &
UPD=$!
pid_record "$UPD"
make_running() { grep -q '^make-job$' "$R$RUNS" 2>/dev/null; }
wait_for "make started by update-data" 60 make_running ||
	{ tail -n 5 "$W/make-events.jsonl" "$W/logs/agent.log" >&2; exit 1; }
JOB=$(agent_job_dir "$R")
JOBID=$(basename "$JOB")
kill -9 "$TUAPD_PID"
wait "$TUAPD_PID" 2>/dev/null || true
[ ! -e "$JOB/make.status" ] || tuapt_die "make had ended before tuapd was killed"

phase make-resume
tuapd_start "$C" "$W/d" TUAPD_PID
job_state() {
	ctl status --json example.test | "$TUAPT_PY" -c '
import json, sys
d = json.load(sys.stdin)["domains"][0]
print(d.get("job", "?"), d.get("phase", "?"))'
}
job_done() { [ "$(job_state)" = "done done" ]; }
wait_for "the resumed job to end done" 60 job_done ||
	{ job_state >&2; tail -n 20 "$W/d/tuapd.log" "$W/logs/agent.log" >&2; exit 1; }
grep -q "code=0 stage=make" "$JOB/make.status" || tuapt_die "make.status: $(cat "$JOB/make.status")"

phase make-check
[ "$(grep -c '^make-job$' "$R$RUNS")" = 1 ] || tuapt_die "make ran $(grep -c '^make-job$' "$R$RUNS") times"
[ "$(grep -c '^make started$' "$JOB/make.log")" = 1 ] || tuapt_die "make.log: $(cat "$JOB/make.log")"
ctl log example.test >"$W/setup-make.log"
grep -q '^make| make finished$' "$W/setup-make.log" || { cat "$W/setup-make.log" >&2; tuapt_die "make's last line is not in the setup log"; }
ctl status --json example.test >"$W/status.json"
"$TUAPT_PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))["domains"][0]
assert d["domain"] == "example.test" and d["job"] == "done", d' "$W/status.json" ||
	tuapt_die "status: $(cat "$W/status.json")"
grep -q "job $JOBID" "$W/d/tuapd.log" || tuapt_die "tuapd's log does not name job $JOBID"
# the tuap-ctl that started the job lost tuapd: it said so and exited 3, it did not hang
wait_for "update-data's tuap-ctl to give up on the killed tuapd" 30 sh -c "! kill -0 $UPD 2>/dev/null"
rc=0
wait "$UPD" || rc=$?
[ "$rc" = 3 ] || tuapt_die "update-data's tuap-ctl exited $rc when tuapd was killed, expected 3"
grep -q "lost the connection to tuapd" "$W/logs/update-data.err" || tuapt_die "update-data: $(cat "$W/logs/update-data.err")"

# ------------------------------------------------------------------------------------------
# 3. tuapd killed during make and started again only after make has ended: the resumed job
#    gets make's result from the agent, it does not run make again. (Regression: update-data
#    jobs asked the agent to rerun make, so a resume after make's end ran it twice; seen in
#    tests/stress/crashtrials.sh.)
phase make-ended
: >"$R$RUNS"
timeout 300 "$TUAP_CTL" update-data --json "$S" >"$W/make2-events.jsonl" 2>"$W/logs/update-data2.err" &
UPD=$!
pid_record "$UPD"
wait_for "make started by the second update-data" 60 make_running ||
	{ tail -n 5 "$W/make2-events.jsonl" "$W/logs/agent.log" >&2; exit 1; }
JOB=$(agent_job_dir "$R")
kill -9 "$TUAPD_PID"
wait "$TUAPD_PID" 2>/dev/null || true
make_ended() { [ -s "$JOB/make.status" ]; }
wait_for "make to end while tuapd is down" 60 make_ended || tuapt_die "make did not end"
tuapd_start "$C" "$W/d" TUAPD_PID
wait_for "the job resumed after make's end to be done" 60 job_done ||
	{ job_state >&2; tail -n 20 "$W/d/tuapd.log" "$W/logs/agent.log" >&2; exit 1; }
[ "$(grep -c '^make-job$' "$R$RUNS")" = 1 ] || tuapt_die "make ran $(grep -c '^make-job$' "$R$RUNS") times for one job"
[ ! -e "$JOB/make.log.1" ] || tuapt_die "the agent started the job's make a second time (make.log.1)"
wait "$UPD" 2>/dev/null || true

phase tuapd-stop
tuapd_stop "$TUAPD_PID" "$W/d"
phase
echo "PASS: agent killed during data resumes at its confirmed 64 MiB with the right sha256; tuapd killed during make resumes without a second make, also when make ended while tuapd was down"
