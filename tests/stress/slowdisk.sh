#!/bin/bash
# slowdisk.sh [--json FILE] — a slow disk and a disk that stops (issue 13, item 5): a real guest
# (TCG, the e2e image with the agent baked in, a private libvirtd in a network namespace, as
# powercut.sh sets up) whose site disk is throttled by QEMU (`virsh blkdeviotune`, the
# hypervisor's own I/O limits) while its agent restores data.tar.gz: 24 MiB of random blobs, a
# VERSION file and a Makefile that checks every blob's sha256 and counts its runs in the guest.
#
#   1. provision, the disk unthrottled: the data phase's time is the baseline;
#   2. update-data (version 2) with the disk at 4 MiB/s (and 200 IOPS): it must finish, slower,
#      the tree whole, make run once;
#   3. update-data (version 3) with the disk stopped (1 byte/s, 1 IOPS): the data phase must
#      fail at its deadline (tuapd.conf deadlines.data, 45 s here) with an error naming the
#      phase, not hang; then the limit is lifted and `provision --resume` must finish the job:
#      the tree whole at version 3, make run once for it (3 runs in all, 3 ends).
# Prints its figures ("slow disk: ..."); exits 1 when a goal fails, 77 when it cannot run here.
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
	*) echo "slowdisk.sh: unexpected '$1'" >&2; exit 2 ;;
	esac
done

skip_unless_root
skip_unless_netns
skip_unless_cmd virsh libvirtd virtlogd tini qemu-system-x86_64 qemu-img debootstrap mkfs.ext4 \
	python3
vm_need_bins

DOM=slow.test
MIB=$((1024 * 1024))
RUNS=/var/lib/tuap-slowdisk-runs # in the guest
DEADLINE=${TUAP_E2E_PROVISION_DEADLINE:-1500}
DATA_DEADLINE=45

tmpdir_new W
mkdir -p "$W/logs" "$W/sites" "$W/state" "$W/run" "$W/vms"
TUAPT_LOGDIR=$W/logs

phase image
vm_image "$W"

phase netns+libvirtd
netns_new NS sd
libvirtd_start_default "$NS" URI
libvirt_domain_cleanup "$URI" "$DOM"
vm_tuapd_conf "$W" "$URI" "$W/images.conf" "$IMAGE_NAME" ""
# the data phase's deadline short, so that the stopped disk fails it within the test
sed -i "s/^deadlines = { hello = 900; packages = 900; };\$/deadlines = { hello = 900; packages = 900; data = $DATA_DEADLINE; };/" \
	"$W/tuapd.conf"
grep -q "data = $DATA_DEADLINE;" "$W/tuapd.conf" || tuapt_die "cannot set the data deadline in $W/tuapd.conf"
"$TUAPD" -c "$W/tuapd.conf" --check >/dev/null || tuapt_die "tuapd --check refused $W/tuapd.conf"
vm_tuapd_start "$NS" "$W/tuapd.conf" "$W/logs/tuapd.log"

phase site
S=$W/sites/$DOM
mkdir -p "$S/site/blob"
cat >"$S/provision.conf" <<EOF
# slowdisk.sh's site
ips=192.0.2.60/24
gateway=192.0.2.1
size=4G
memory=1024
cpus=2
image=$IMAGE_NAME
EOF
cat >"$S/site/Makefile" <<EOF
# slowdisk.sh: checks its tree, counts its runs
all:
	sha256sum --check --quiet blob.sha256
	echo "\$\$(cat VERSION) start" >>$RUNS
	echo "\$\$(cat VERSION) end" >>$RUNS
report:
	@echo "report: version \$\$(cat VERSION) starts \$\$(grep -c ' start\$\$' $RUNS || true) ends \$\$(grep -c ' end\$\$' $RUNS || true)"
	@if sha256sum --check --quiet blob.sha256; then echo "report: tree whole"; else echo "report: tree broken"; fi
EOF
# version V: new random blobs, their sums, the tarball
version() {
	for i in 1 2 3; do head -c $((8 * MIB)) /dev/urandom >"$S/site/blob/$i.bin"; done
	echo "$1" >"$S/site/VERSION"
	(cd "$S/site" && sha256sum VERSION blob/*.bin >blob.sha256)
	"$CTL" pack "$S" >/dev/null
}

# data_ms FILE: the data phase's phase_ms in a tuap-ctl --json log (empty: none)
data_ms() {
	python3 - "$1" <<'EOF'
import json, sys
ms = ""
for line in open(sys.argv[1]):
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    if ev.get("type") == "phase" and ev.get("name") == "data" and ev.get("state") == "done":
        ms = ev.get("phase_ms", "")
print(ms)
EOF
}
# ctl_timed NAME ARGS...: tuap-ctl ARGS --json into logs/NAME.json, bounded; sets RC and SECS
ctl_timed() {
	local name=$1 t0
	shift
	t0=$(now)
	RC=0
	timeout "$DEADLINE" "$CTL" "$@" --json >"$W/logs/$name.json" 2>"$W/logs/$name.err" || RC=$?
	SECS=$(secs_since "$t0")
	[ "$RC" != 124 ] || tuapt_die "tuap-ctl $* did not end within $DEADLINE s"
}
# throttle BPS IOPS: the guest's first disk limited (0 0: unlimited), live
disk=
throttle() {
	[ -n "$disk" ] || disk=$(virsh_ "$URI" domblklist "$DOM" | awk '$2 ~ /\.qcow2$/ { print $1; exit }')
	[ -n "$disk" ] || tuapt_die "no qcow2 disk in $(virsh_ "$URI" domblklist "$DOM")"
	virsh_ "$URI" blkdeviotune "$DOM" "$disk" --total-bytes-sec "$1" --total-iops-sec "$2" --live
}

phase provision
version 1
ctl_timed provision provision "$S"
[ "$RC" = 0 ] || { tail -n 20 "$W/logs/provision.json" "$W/logs/provision.err" >&2; tuapt_die "provision exited $RC"; }
BASE_MS=$(data_ms "$W/logs/provision.json")
[ -n "$BASE_MS" ] || tuapt_die "no data phase time in the provision's events"

phase slow
throttle $((4 * MIB)) 200
virsh_ "$URI" blkdeviotune "$DOM" "$disk" >"$W/logs/iotune-slow.txt"
grep -q "total_bytes_sec *: *$((4 * MIB))" "$W/logs/iotune-slow.txt" ||
	tuapt_die "the throttle did not take: $(tr '\n' ' ' <"$W/logs/iotune-slow.txt")"
version 2
ctl_timed slow update-data "$S"
[ "$RC" = 0 ] || { tail -n 20 "$W/logs/slow.json" "$W/logs/slow.err" >&2; tuapt_die "update-data on the slow disk exited $RC"; }
SLOW_MS=$(data_ms "$W/logs/slow.json")
[ -n "$SLOW_MS" ] || tuapt_die "no data phase time in the slow update's events"

phase stopped
throttle 1 1
version 3
ctl_timed stopped update-data "$S"
STOP_SECS=$SECS
[ "$RC" != 0 ] || tuapt_die "update-data on a stopped disk succeeded"
grep -q "data: not done within $DATA_DEADLINE s" "$W/logs/stopped.json" "$W/logs/stopped.err" ||
	{ tail -n 5 "$W/logs/stopped.json" "$W/logs/stopped.err" >&2; tuapt_die "the failure does not name the data phase and its deadline"; }
awk -v s="$STOP_SECS" -v d="$DATA_DEADLINE" 'BEGIN { exit !(s < d + 60) }' || tuapt_die "the stopped disk's job took ${STOP_SECS}s to fail (deadline ${DATA_DEADLINE}s)"
FAIL_MSG=$(grep -ho "data: not done within [0-9]* s[^\"]*" "$W/logs/stopped.json" "$W/logs/stopped.err" | head -n 1)

phase resume
throttle 0 0
ctl_timed resume provision --resume "$S"
[ "$RC" = 0 ] || { tail -n 20 "$W/logs/resume.json" "$W/logs/resume.err" >&2; tuapt_die "provision --resume after the disk came back exited $RC"; }
RESUME_SECS=$SECS

phase report
ctl_timed report run "$DOM" make report
[ "$RC" = 0 ] || { cat "$W/logs/report.err" >&2; tuapt_die "tuap-ctl run make report failed"; }
"$CTL" log "$DOM" >"$W/report.log"
line=$(grep "report: version" "$W/report.log" | tail -n 1)
ver=$(sed -n 's/.*report: version \([0-9]*\) .*/\1/p' <<<"$line")
starts=$(sed -n 's/.* starts \([0-9]*\) ends.*/\1/p' <<<"$line")
ends=$(sed -n 's/.* ends \([0-9]*\).*/\1/p' <<<"$line")
whole=$(grep -c "report: tree whole" "$W/report.log" || true)
[ -n "$ver" ] || tuapt_die "no report in the setup log: $(tail -n 5 "$W/report.log")"
unreadable=$(grep -c "cannot replay the journal" "$W/logs/tuapd.log" || true)
tuapd_stop "$TUAPD_PID" "$W/logs"

ratio=$(python3 -c "import sys; print('%.2f' % (int(sys.argv[2]) / max(1, int(sys.argv[1]))))" "$BASE_MS" "$SLOW_MS")
echo "slow disk: data phase of 24 MiB: ${BASE_MS} ms unthrottled, ${SLOW_MS} ms at 4 MiB/s and 200 IOPS (ratio $ratio); done, tree whole"
echo "slow disk: stopped disk (1 B/s, 1 IOPS): the update failed after ${STOP_SECS}s: $FAIL_MSG"
echo "slow disk: disk back: provision --resume finished in ${RESUME_SECS}s; the site at version $ver, tree whole $whole; make started $starts times, ended $ends (3 versions); journals not replayed $unreadable"
if [ -n "$jout" ]; then
	python3 -c 'import json, sys; json.dump(dict(zip(sys.argv[2::2], sys.argv[3::2])), open(sys.argv[1], "w"))' \
		"$jout" data_ms_unthrottled "$BASE_MS" data_ms_slow "$SLOW_MS" stopped_fail_s "$STOP_SECS" \
		resume_s "$RESUME_SECS" version "$ver" tree_whole "$whole" make_starts "$starts" make_ends "$ends" \
		journals_unreadable "$unreadable"
fi
[ "$ver" = 3 ] && [ "$whole" -ge 1 ] && [ "$starts" = 3 ] && [ "$ends" = 3 ] && [ "$unreadable" = 0 ] ||
	tuapt_die "a slow-disk goal failed (see the figures above)"
echo "PASS: a slow disk finished its restore; a stopped one failed the data phase at its deadline, and the job resumed once the disk came back"
