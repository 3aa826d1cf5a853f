#!/bin/bash
# diskfull.sh [--json FILE] — the site's disk filling during a restore (issue 13, item 5). The
# real tuapd and the shipped agent (chrooted) in two namespaces (tests/lib/tuap.sh's layout);
# the agent's site root (/srv/tuap in its root) is a tmpfs of 48 MiB.
#   1. version 1 of the site (8 MiB of random data) is provisioned: the tree is in place;
#   2. update-data with version 2 (40 MiB of random data, which does not fit beside version 1):
#      the job fails in its data phase with an error that names the phase and says the disk
#      is full; make does not run; the tree is still version 1, whole (every sha256 holds);
#      nothing of version 2 is left taking the space (no extraction directory);
#   3. the same with room for the bytes but not for the inodes (tmpfs nr_inodes=400, version 3
#      with 1000 files): extraction itself runs out of space; same checks;
#   4. the disk grows (tmpfs remount) and `tuap-ctl provision --resume` finishes the last job:
#      the tree is version 3, whole, and make ran once for it.
# Prints the figures (the error, the time to fail, what was left) and exits 1 when a goal fails.
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/chroot.sh"
. "$src/tests/lib/tuap.sh"

jout=
[ "${1:-}" != --json ] || jout=${2:?}
skip_unless_root
skip_unless_netns
skip_unless_cmd debootstrap
tuap_need_bins
RUNS=/var/lib/tuap-stress-diskfull-runs
MIB=$((1024 * 1024))

agent_host_setup
mkdir -p "$R/srv/tuap"
mount -t tmpfs -o size=48m,mode=0755 tuap-diskfull "$R/srv/tuap"
cleanup_push_late umount -l "$R/srv/tuap"
phase tuapd
agent_up example.test

site_copy "$W/sites"
S=$W/sites/example.test
sed -i '/^packages=/d' "$S/provision.conf"
# version V with N MiB of random data
site_version() {
	rm -rf "$S/site"
	mkdir -p "$S/site/blob"
	echo "$1" >"$S/site/VERSION"
	head -c $(($2 * MIB)) /dev/urandom >"$S/site/blob/data.bin"
	(cd "$S/site" && sha256sum VERSION blob/data.bin >sums)
	printf 'all:\n\tsha256sum --check --quiet sums\n\techo "$$(cat VERSION)" >>%s\n' "$RUNS" >"$S/site/Makefile"
	ctl pack "$S" >/dev/null
}
# failed_phase FILE: "PHASE: MESSAGE" of the first failed phase in a tuap-ctl --json stream
failed_phase() {
	"$TUAPT_PY" - "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        e = json.loads(line)
        if e.get("type") == "phase" and e.get("state") == "failed":
            print("%s: %s" % (e.get("name"), e.get("message", "")))
            break
EOF
}
tree=$R/srv/tuap/example.test
tree_is() { [ "$(cat "$tree/VERSION" 2>/dev/null)" = "$1" ] && (cd "$tree" && sha256sum --check --quiet sums); }

phase v1
site_version 1 8
ctl provision --existing --json "$S" >"$W/logs/v1.jsonl" 2>&1 ||
	{ tail -n 20 "$W/logs/v1.jsonl" >&2; tuapt_die "the first provision failed"; }
tree_is 1 || tuapt_die "version 1 is not in place"

phase full
site_version 2 40
t0=$(now)
rc=0
ctl update-data --json "$S" >"$W/logs/v2.jsonl" 2>&1 || rc=$?
fail_s=$(secs_since "$t0")
[ "$rc" != 0 ] || tuapt_die "update-data of 40 MiB into a full 48 MiB disk succeeded"
err=$(failed_phase "$W/logs/v2.jsonl")
echo "disk full: update-data failed after ${fail_s}s: $err"
case $err in
data:*) ;;
*) tuapt_die "the failure does not name the data phase: '$err'" ;;
esac
echo "$err" | grep -qi "no room\|no space" || tuapt_die "the error does not say the disk is full: '$err'"
[ "$(grep -c '^2$' "$R$RUNS" 2>/dev/null || true)" = 0 ] || tuapt_die "make ran for version 2"
tree_is 1 || tuapt_die "version 1 is no longer whole after the failed restore"
left=$(find "$R/srv/tuap" -mindepth 1 -maxdepth 1 ! -name example.test ! -name 'example.test.old*' -printf '%f ' || true)
used=$(df -B1 --output=used "$R/srv/tuap" | tail -n 1 | tr -d ' ')
echo "disk full: left beside the tree: '${left:-nothing}'; $((used / MIB)) MiB of 48 in use"
[ -z "$left" ] || tuapt_die "the failed restore left '$left' in the site root"

# 2b. room by bytes, but no inodes left: extraction itself hits ENOSPC, after the agent's
#     free-space check has let it start
phase inodes
mount -o remount,size=160m,nr_inodes=400 "$R/srv/tuap"
v1_inodes=$(df --output=iused "$R/srv/tuap" | tail -n 1 | tr -d ' ')
rm -rf "$S/site"
mkdir -p "$S/site/many"
echo 3 >"$S/site/VERSION"
for k in $(seq 1 1000); do echo "$k" >"$S/site/many/f$k"; done
(cd "$S/site" && sha256sum VERSION many/* >sums)
printf 'all:\n\tsha256sum --check --quiet sums\n\techo "$$(cat VERSION)" >>%s\n' "$RUNS" >"$S/site/Makefile"
ctl pack "$S" >/dev/null
rc=0
ctl update-data --json "$S" >"$W/logs/v3.jsonl" 2>&1 || rc=$?
[ "$rc" != 0 ] || tuapt_die "update-data of 1000 files into a disk with 400 inodes succeeded"
err3=$(failed_phase "$W/logs/v3.jsonl")
echo "disk full: out of inodes ($v1_inodes of 400 used by version 1): $err3"
case $err3 in data:*) ;; *) tuapt_die "the inode failure does not name the data phase: '$err3'" ;; esac
echo "$err3" | grep -qi "no space\|no room\|inode" || tuapt_die "the error does not say the disk is full: '$err3'"
tree_is 1 || tuapt_die "version 1 is no longer whole after the inode failure"
[ "$(grep -c '^3$' "$R$RUNS" 2>/dev/null || true)" = 0 ] || tuapt_die "make ran for version 3"
left=$(find "$R/srv/tuap" -mindepth 1 -maxdepth 1 ! -name example.test ! -name 'example.test.old*' -printf '%f ' || true)
echo "disk full: left beside the tree after the inode failure: '${left:-nothing}'"
[ -z "$left" ] || tuapt_die "the failed restore left '$left' in the site root"

phase resume
mount -o remount,size=160m,nr_inodes=100000 "$R/srv/tuap"
ctl provision --resume --json "$S" >"$W/logs/resume.jsonl" 2>&1 ||
	{ tail -n 20 "$W/logs/resume.jsonl" >&2; tuapt_die "provision --resume after freeing space failed"; }
tree_is 3 || tuapt_die "version 3 is not whole after the resume"
[ "$(grep -c '^3$' "$R$RUNS")" = 1 ] || tuapt_die "make ran $(grep -c '^3$' "$R$RUNS") times for version 3"
tuapd_stop "$TUAPD_PID" "$W/d"
phase
echo "disk full: resumed once the disk had room: version 3 whole, make once; version 1 was whole throughout"
if [ -n "$jout" ]; then
	"$TUAPT_PY" -c 'import json,sys; json.dump({"error": sys.argv[2], "fail_seconds": float(sys.argv[3]), "left": sys.argv[4], "resumed": True}, open(sys.argv[1], "w"))' \
		"$jout" "$err" "$fail_s" "$left"
fi
