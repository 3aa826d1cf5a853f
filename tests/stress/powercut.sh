#!/bin/bash
# powercut.sh [--json FILE] — power cuts (issue 13, item 2): a real guest (TCG, the e2e image with
# the agent baked in, a private libvirtd in a network namespace, as tests/e2e/test_provision_vm.sh
# sets up) powered off with `virsh destroy` while its agent restores data.tar.gz, and again while
# the site's make runs; each time the VM is started again and the job resumed
# (`tuap-ctl provision --resume`). The site carries 24 MiB of random blobs, a VERSION file and a
# Makefile that checks every blob's sha256, then writes "start" (synced), sleeps and writes
# "end" to a counter file in the guest; its `report` target prints the counter and checks the
# tree again, read back with `tuap-ctl run DOMAIN make report` and `tuap-ctl log`.
#
# Goals:
#   - the cut during data: tuapd fails the job at once ("the VM stopped while its agent
#     worked"), the resume restores the tree again, whole (bytes lost: 0), and make runs;
#   - the cut during make: the job fails the same way; the resume ends with make in the
#     documented interrupted state and does not run it again by itself; `--resume --rerun-make`
#     then runs it to its end, once: make started exactly twice (the cut one, whose synced
#     start survives the cut, and the asked one), ended exactly once;
#   - no job stuck past its deadline, every journal replayed;
#   - in the guest the agent's config is root's alone (0700 directory, 0600 file), so are
#     cloud-init's local files, and the seed medium (the agent's key) is gone.
# Prints the figures ("power cut: ..."); exits 1 when a goal fails, 77 when it cannot run here.
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/libvirtd.sh"
. "$src/tests/lib/tuap.sh"

jout=
while [ $# -gt 0 ]; do
	case $1 in
	--json) jout=${2:?}; shift 2 ;;
	*) echo "powercut.sh: unexpected '$1'" >&2; exit 2 ;;
	esac
done

skip_unless_root
skip_unless_netns
skip_unless_cmd virsh libvirtd virtlogd tini qemu-system-x86_64 qemu-img debootstrap mkfs.ext4 \
	curl ss python3
vm_need_bins

DOM=power.test
MIB=$((1024 * 1024))
RUNS=/var/lib/tuap-powercut-runs # in the guest
DEADLINE=${TUAP_E2E_PROVISION_DEADLINE:-1500}

tmpdir_new W
mkdir -p "$W/logs" "$W/sites" "$W/state" "$W/run" "$W/vms"
TUAPT_LOGDIR=$W/logs

phase image
vm_image "$W"

phase netns+libvirtd
netns_new NS pc
libvirtd_start_default "$NS" URI
libvirt_domain_cleanup "$URI" "$DOM"
# no packages: the image has make, and the site needs nothing else (no apt source)
vm_tuapd_conf "$W" "$URI" "$W/images.conf" "$IMAGE_NAME" ""
vm_tuapd_start "$NS" "$W/tuapd.conf" "$W/logs/tuapd.log"

phase site
S=$W/sites/$DOM
mkdir -p "$S/site/blob"
cat >"$S/provision.conf" <<EOF
# powercut.sh's site
ips=192.0.2.40/24
gateway=192.0.2.1
size=4G
memory=1024
cpus=2
image=$IMAGE_NAME
EOF
for i in 1 2 3; do head -c $((8 * MIB)) /dev/urandom >"$S/site/blob/$i.bin"; done
echo 1 >"$S/site/VERSION"
(cd "$S/site" && sha256sum VERSION blob/*.bin >blob.sha256)
cat >"$S/site/Makefile" <<EOF
# powercut.sh: checks its tree, counts its runs (the start synced, so a cut cannot lose it)
all:
	sha256sum --check --quiet blob.sha256
	echo "\$\$(cat VERSION) start" >>$RUNS && sync $RUNS
	sleep 15
	echo "\$\$(cat VERSION) end" >>$RUNS && sync $RUNS
report:
	@echo "report: starts \$\$(grep -c ' start\$\$' $RUNS || true) ends \$\$(grep -c ' end\$\$' $RUNS || true)"
	@if sha256sum --check --quiet blob.sha256; then echo "report: tree whole"; else echo "report: tree broken"; fi
	@stat -c 'report: mode %a %n' /etc/tuap-agent /etc/tuap-agent/agent.conf /var/lib/cloud/seed/nocloud /var/lib/cloud/seed/nocloud/user-data
	@if [ -e /dev/disk/by-label/cidata ]; then echo "report: the seed is still in"; else echo "report: no seed medium"; fi
EOF
"$CTL" pack "$S" >/dev/null

status_json() { "$CTL" status --json "$DOM" >"$W/status.json" 2>/dev/null; }
# fact KEY / step NAME: from the last status_json
fact() {
	python3 - "$W/status.json" "$DOM" "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    for d in e.get("domains", []) if e.get("type") == "status" else []:
        if d["domain"] == sys.argv[2]:
            k = sys.argv[3]
            print(d.get("steps", {}).get(k[5:], "") if k.startswith("step:") else d.get(k, ""))
EOF
}
step_runs() { status_json && case "$(fact "step:$1")" in started | progress | log) true ;; *) false ;; esac; }
job_is() { status_json && [ "$(fact job)" = "$1" ]; }
vm_running() { [ "$(virsh_ "$URI" domstate "$DOM" 2>/dev/null)" = running ]; }

# logged TEXT: the running job's setup log holds TEXT (make echoes each recipe line it runs)
logged() { "$CTL" log "$DOM" 2>/dev/null | grep -qF -- "$1"; }
# cut STEP [TEXT]: waits (bounded) until STEP runs (and its output shows TEXT), then powers the
# VM off; the job must fail at once, saying so. Sets CUT_AT (seconds into the wait).
cut() {
	local t0
	t0=$(now)
	wait_for "the $1 step to run" "$DEADLINE" step_runs "$1" ||
		{ tail -n 20 "$W/logs/tuapd.log" >&2; tuapt_die "the $1 step never ran"; }
	if [ -n "${2:-}" ]; then
		wait_for "'$2' in the $1 step's output" "$DEADLINE" logged "$2" ||
			tuapt_die "the $1 step never printed '$2'"
	fi
	virsh_ "$URI" destroy "$DOM" >/dev/null
	CUT_AT=$(secs_since "$t0")
	tuapt_log "power cut during $1 (${CUT_AT}s after waiting for it)"
	wait_for "the job to fail after the cut" 60 job_is failed ||
		tuapt_die "the job did not fail after the power cut (phase $(fact phase))"
	grep -q "the VM stopped" "$W/logs/tuapd.log" ||
		tuapt_die "tuapd did not say the VM stopped"
}
# power_on: the operator starts the VM again
power_on() {
	virsh_ "$URI" start "$DOM" >/dev/null
	wait_for "the VM to run" 60 vm_running
}

phase provision
"$CTL" provision --detach "$S" >"$W/logs/provision.out" 2>&1 ||
	{ cat "$W/logs/provision.out" >&2; tuapt_die "provision --detach failed"; }
cut data
CUT_DATA=$CUT_AT
stuck=0

phase resume-after-data
power_on
"$CTL" provision --resume --detach "$S" >"$W/logs/resume1.out" 2>&1 ||
	{ cat "$W/logs/resume1.out" >&2; tuapt_die "provision --resume failed to start"; }
# the resume restores the tree again and goes on to make, which is cut in its turn, once its
# recipe has counted its start (the line after it is the sleep)
cut make "sleep 15"
CUT_MAKE=$CUT_AT
data_state=$(fact step:data)
[ "$data_state" = done ] || tuapt_die "after the resume the data step is '$data_state', not done"

phase resume-after-make
power_on
rc=0
timeout "$DEADLINE" "$CTL" provision --resume "$S" >"$W/logs/resume2.out" 2>&1 || rc=$?
[ "$rc" != 124 ] || stuck=$((stuck + 1))
status_json
make_state=$(fact step:make)
job_state=$(fact job)
grep -qi "interrupted" "$W/logs/resume2.out" ||
	tuapt_die "the resume after the cut in make does not say make was interrupted: $(tail -n 3 "$W/logs/resume2.out")"
[ "$job_state" != done ] || [ "$make_state" != done ] ||
	tuapt_die "the resume ran make again by itself (make $make_state, job $job_state)"

phase rerun-make
rc=0
timeout "$DEADLINE" "$CTL" provision --resume --rerun-make "$S" >"$W/logs/rerun.out" 2>&1 || rc=$?
[ "$rc" != 124 ] || stuck=$((stuck + 1))
[ "$rc" = 0 ] || { tail -n 20 "$W/logs/rerun.out" >&2; tuapt_die "provision --resume --rerun-make exited $rc"; }

phase report
"$CTL" run "$DOM" make report >"$W/logs/report.out" 2>&1 ||
	{ cat "$W/logs/report.out" >&2; tuapt_die "tuap-ctl run make report failed"; }
"$CTL" log "$DOM" >"$W/report.log"
starts=$(sed -n 's/.*report: starts \([0-9]*\) ends.*/\1/p' "$W/report.log" | tail -n 1)
ends=$(sed -n 's/.*report: starts [0-9]* ends \([0-9]*\).*/\1/p' "$W/report.log" | tail -n 1)
whole=$(grep -c "report: tree whole" "$W/report.log" || true)
[ -n "$starts" ] || tuapt_die "no report in the setup log: $(tail -n 5 "$W/report.log")"
# the guest's secrets: the agent's config root's alone, the seed (its key) gone after the hello
for want in "700 /etc/tuap-agent" "600 /etc/tuap-agent/agent.conf" \
	"700 /var/lib/cloud/seed/nocloud" "600 /var/lib/cloud/seed/nocloud/user-data"; do
	grep -q "report: mode $want\$" "$W/report.log" ||
		tuapt_die "in the guest: not '$want': $(grep 'report: mode' "$W/report.log" | tr '\n' ' ')"
done
grep -q "report: no seed medium" "$W/report.log" || tuapt_die "the seed ISO is still in the guest"
lost=0
[ "$whole" -ge 1 ] || lost=$((24 * MIB))
unreadable=$(grep -c "cannot replay the journal" "$W/logs/tuapd.log" || true)
tuapd_stop "$TUAPD_PID" "$W/logs"

echo "power cut: 2 cuts of the VM (virsh destroy): during data at ${CUT_DATA}s, during make at ${CUT_MAKE}s; each failed its job at once"
echo "power cut: after the data cut the resume restored the tree whole (bytes lost $lost); after the make cut make was left interrupted (job $job_state, make $make_state)"
echo "power cut: make started $starts times (the cut one and --rerun-make), ended $ends; jobs stuck $stuck; journals not replayed $unreadable"
if [ -n "$jout" ]; then
	python3 -c 'import json, sys; json.dump(dict(zip(sys.argv[2::2], sys.argv[3::2])), open(sys.argv[1], "w"))' \
		"$jout" cut_data_s "$CUT_DATA" cut_make_s "$CUT_MAKE" bytes_lost "$lost" make_starts "$starts" \
		make_ends "$ends" stuck "$stuck" journals_unreadable "$unreadable" after_make_cut "$make_state"
fi
[ "$lost" = 0 ] && [ "$starts" = 2 ] && [ "$ends" = 1 ] && [ "$stuck" = 0 ] && [ "$unreadable" = 0 ] ||
	tuapt_die "a power-cut goal failed (see the figures above)"
echo "PASS: power cuts during data and during make: nothing lost, make never run twice by itself"
