#!/bin/bash
# vmsfull.sh [--json FILE] — the hypervisor's pool root full (issue 13, item 5): tuapd's pool_root
# (/vms) is a 160 MiB tmpfs under a private libvirtd in a network namespace, and the base image
# (the e2e image, ~450 MiB) does not fit: the provision must fail in the image phase with an
# error that says the disk is full, leave no partial volume and no domain, and, once the tmpfs
# has grown, `provision --resume` must upload the image whole and go on to define the VM (the
# test stops there: destroy --purge, no boot to the end).
# Prints its figures ("vms full: ..."); exits 1 when a goal fails, 77 when it cannot run here.
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
	*) echo "vmsfull.sh: unexpected '$1'" >&2; exit 2 ;;
	esac
done

skip_unless_root
skip_unless_netns
skip_unless_cmd virsh libvirtd virtlogd tini qemu-system-x86_64 qemu-img debootstrap mkfs.ext4
vm_need_bins

DOM=full.test
DEADLINE=${TUAP_E2E_PROVISION_DEADLINE:-600}

tmpdir_new W
mkdir -p "$W/logs" "$W/sites" "$W/state" "$W/run" "$W/vms"
TUAPT_LOGDIR=$W/logs

phase image
vm_image "$W"
IMAGE_BYTES=$(stat -c %s "$IMG/root.qcow2")

phase tmpfs
mount -t tmpfs -o size=160m,mode=0755 tuap-vmsfull "$W/vms"
cleanup_push_late umount -l "$W/vms"
[ "$IMAGE_BYTES" -gt $((160 * 1024 * 1024)) ] || tuapt_die "the image ($IMAGE_BYTES bytes) fits in 160 MiB: nothing to fill"

phase netns+libvirtd
netns_new NS vf
libvirtd_start_default "$NS" URI
libvirt_domain_cleanup "$URI" "$DOM"
vm_tuapd_conf "$W" "$URI" "$W/images.conf" "$IMAGE_NAME" ""
vm_tuapd_start "$NS" "$W/tuapd.conf" "$W/logs/tuapd.log"

phase site
S=$W/sites/$DOM
mkdir -p "$S"
cat >"$S/provision.conf" <<EOF
# vmsfull.sh's site
ips=192.0.2.50/24
gateway=192.0.2.1
size=4G
memory=512
cpus=1
image=$IMAGE_NAME
EOF

phase full
rc=0
timeout "$DEADLINE" "$CTL" provision "$S" >"$W/logs/full.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$W/logs/full.out" >&2; tuapt_die "the provision on a full /vms exited $rc, not 1"; }
msg=$(grep '] image: FAILED' "$W/logs/full.out" || true)
[ -n "$msg" ] || { cat "$W/logs/full.out" >&2; tuapt_die "the image phase did not fail"; }
grep -qi "no space left\|disk is full\|full" <<<"$msg" || tuapt_die "the image phase's error does not say the disk is full: $msg"
grep -q '] disk: ' "$W/logs/full.out" && tuapt_die "a disk phase ran after the image failed"
vols=$(virsh_ "$URI" vol-list tuap-images 2>/dev/null | awk '$1 != "" { print $1 }' | wc -l)
[ "$vols" = 0 ] || tuapt_die "$vols volume(s) left in tuap-images after the failed upload"
virsh_ "$URI" list --all --name | grep -qx "$DOM" && tuapt_die "a domain $DOM exists after the failure"
used_after=$(df -B1 --output=used "$W/vms" | tail -n 1 | tr -d ' ')
[ "$used_after" -lt $((8 * 1024 * 1024)) ] || tuapt_die "the failed upload left $used_after bytes in /vms"

phase room
mount -o remount,size=2g "$W/vms"
rc=0
timeout "$DEADLINE" "$CTL" provision --resume --detach "$S" >"$W/logs/resume.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$W/logs/resume.out" >&2; tuapt_die "provision --resume exited $rc"; }
phase_of() { "$CTL" status --json "$DOM" 2>/dev/null | python3 -c '
import json, sys
for l in sys.stdin:
    e = json.loads(l)
    for d in e.get("domains", []):
        print(d.get("phase", ""), d.get("job", ""))'; }
defined() { case "$(phase_of)" in "hello running" | "hello "* | users* | packages* | mail* | data* | make* | "done "*) true ;; *) false ;; esac; }
wait_for "the resumed job past define" "$DEADLINE" defined ||
	{ tail -n 20 "$W/logs/tuapd.log" >&2; tuapt_die "the resumed job did not get past define ($(phase_of))"; }
vol=$(virsh_ "$URI" vol-list --details tuap-images | awk '$1 != "" { print $1 }' | head -n 1)
[ -n "$vol" ] || tuapt_die "no base image volume after the resume"
path=$(virsh_ "$URI" vol-path --pool tuap-images "$vol")
[ "$(stat -c %s "$path")" = "$IMAGE_BYTES" ] || tuapt_die "the uploaded image is $(stat -c %s "$path") bytes, not $IMAGE_BYTES"
cmp -s "$path" "$IMG/root.qcow2" || tuapt_die "the uploaded image differs from the catalog's"
"$CTL" destroy --purge "$DOM" >"$W/logs/destroy.out" 2>&1 || { cat "$W/logs/destroy.out" >&2; tuapt_die "destroy --purge failed"; }
tuapd_stop "$TUAPD_PID" "$W/logs"

echo "vms full: image ($((IMAGE_BYTES / 1048576)) MiB) into a 160 MiB /vms: failed in the image phase saying so (${msg#*FAILED: })"
echo "vms full: left 0 volumes, no domain, $((used_after / 1024)) KiB used; resumed with room: image uploaded whole, define done"
if [ -n "$jout" ]; then
	python3 -c 'import json, sys; json.dump({"image_bytes": int(sys.argv[2]), "left_bytes": int(sys.argv[3]), "error": sys.argv[4]}, open(sys.argv[1], "w"))' \
		"$jout" "$IMAGE_BYTES" "$used_after" "$msg"
fi
echo "PASS: /vms full: a clear error in the image phase, nothing left, resumed once there is room"
