#!/bin/bash
# test_harness.sh — tests the test harness itself (tests/lib), without tuap and without a VM:
#   1. cleanup: a child script that sources harness.sh, creates a namespace, a temp dir and a
#      background process that ignores SIGTERM, then fails with exit 3 -> its exit code is kept,
#      the process is KILLed after the deadline, the namespace and temp dir are gone;
#   2. wait_for: times out with "timeout after Ns waiting for PHASE" and fails;
#   3. netns_veth refuses non-TEST-NET addresses; two namespaces joined by a veth pair ping;
#   4. chroot.sh + aptrepo.sh: a per-test root (overlay on the cached debootstrap root) in one
#      namespace installs nginx with apt from the local repository served in the other, and runs
#      it; the cached root is left untouched.
# Exits 77 (skip) when not root or without netns support.
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/chroot.sh"
. "$src/tests/lib/aptrepo.sh"

skip_unless_root
skip_unless_netns
skip_unless_cmd ping debootstrap
tmpdir_new W
mkdir -p "$W/logs"
TUAPT_LOGDIR=$W/logs

# --- 1. cleanup of a failing child test
phase cleanup
cat >"$W/child.sh" <<'EOF'
set -eu
. "$1/tests/lib/harness.sh"
TUAPT_KILL_DEADLINE=2
netns_new NS child
tmpdir_new T
netns_bg "$NS" P sh -c 'trap "" TERM; while :; do sleep 1; done'
sleep 0.5
printf '%s %s %s\n' "$NS" "$T" "$P" >"$2"
exit 3
EOF
rc=0
bash "$W/child.sh" "$src" "$W/child.out" 2>"$W/logs/child.err" || rc=$?
[ "$rc" = 3 ] || { cat "$W/logs/child.err" >&2; tuapt_die "child exit code $rc, expected 3 (cleanup must keep it)"; }
read -r cns ct cp <"$W/child.out"
! ip netns list | grep -qw "$cns" || tuapt_die "namespace $cns left behind"
[ ! -e "$ct" ] || tuapt_die "temp dir $ct left behind"
! kill -0 "$cp" 2>/dev/null || tuapt_die "pid $cp (ignores TERM) still alive"
grep -q "pid $cp still alive 2s after TERM: KILL" "$W/logs/child.err" ||
	tuapt_die "no KILL escalation reported for $cp"

# --- 2. wait_for
phase wait_for
rc=0
msg=$(wait_for "the impossible" 1 false 2>&1) || rc=$?
[ "$rc" = 1 ] || tuapt_die "wait_for on 'false' returned $rc"
[ "$msg" = "timeout after 1s waiting for the impossible" ] || tuapt_die "wait_for said '$msg'"
wait_for "true" 5 true || tuapt_die "wait_for on 'true' failed"

# --- 3. namespaces and veth
phase netns
netns_new A repo
netns_new B host
if (netns_veth "$A" bad0 10.1.2.3/24 "$B" bad1 - 2>/dev/null); then
	tuapt_die "netns_veth accepted 10.1.2.3/24"
fi
netns_veth "$A" veth-a 192.0.2.1/24 "$B" veth-b 192.0.2.2/24
[ "$(ip netns exec "$B" ip route show default)" = "" ] || tuapt_die "default route in $B"
wait_for "ping 192.0.2.1 from $B" 10 ip netns exec "$B" ping -c 1 -W 1 192.0.2.1 >/dev/null

# --- 4. chroot + local apt repository
phase chroot-root
chroot_root_cached BASE
before=$(find "$BASE/etc" "$BASE/usr/sbin" -newer "$BASE/etc/hostname" | wc -l)
chroot_new R
phase apt-repo
aptrepo_build "$W/repo" "$(dirname "$BASE")/packages.txt" nginx
aptrepo_serve "$A" 192.0.2.1 8080 "$W/repo" LINE
printf '%s\n' "$LINE" >"$R/etc/apt/sources.list.d/tuap-local.list"
phase chroot-apt-install
chroot_run "$B" "$R" apt-get -q update >"$W/logs/apt-update.out" 2>&1 ||
	{ tail -n 20 "$W/logs/apt-update.out" >&2; tuapt_die "apt-get update in the chroot failed"; }
chroot_run "$B" "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends \
	nginx >"$W/logs/apt-install.out" 2>&1 ||
	{ tail -n 20 "$W/logs/apt-install.out" >&2; tuapt_die "apt-get install nginx in the chroot failed"; }
phase chroot-nginx
chroot_run "$B" "$R" sh -c 'echo hello-from-chroot >/var/www/html/index.html'
chroot_bg "$B" "$R" NGINX /usr/sbin/nginx -g 'daemon off;'
wait_for "nginx in the chroot on 192.0.2.2:80" 20 port_open "$B" 192.0.2.2 80
got=$(ip netns exec "$A" python3 -c 'import urllib.request as u; print(u.urlopen("http://192.0.2.2/", timeout=5).read().decode().strip())')
[ "$got" = hello-from-chroot ] || tuapt_die "nginx in the chroot served '$got'"
grep -q ' /proc ' /proc/mounts && ! grep -q "$R/proc" /proc/mounts ||
	tuapt_die "the chroot's /proc mount leaked into the host mount namespace"
[ ! -e "$BASE/usr/sbin/nginx" ] || tuapt_die "nginx landed in the cached root $BASE"
after=$(find "$BASE/etc" "$BASE/usr/sbin" -newer "$BASE/etc/hostname" | wc -l)
[ "$before" = "$after" ] || tuapt_die "the cached root $BASE was modified"
phase
echo "PASS: harness cleanup, wait_for, netns/veth, chroot + local apt repository"
