#!/bin/sh
# virt against a real libvirtd: starts a private virtlogd + libvirtd under `tini -s` (a child
# subreaper; see shared/notes/vm-tests-on-this-machine.md) inside a network namespace this
# script creates, then runs test_virt_real inside the same namespace with TUAP_LIBVIRT_URI
# pointing at that libvirtd. Nothing reaches the host network: the NAT network the test
# defines exists only in the namespace, which has no uplink.
#
# Besides the network namespace, each daemon gets bind mounts over /etc/libvirt, /run,
# /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt (ip netns exec gives it a
# private mount namespace), all pointing into this script's work directory: the daemons share
# those directories with each other but nothing with a system libvirtd or a parallel run, and
# their socket is reachable from outside as $work/run/libvirt/libvirt-sock.
#
# NOTE: the start/stop logic is inline here for now; tests/lib/libvirtd.sh (another branch) is
# meant to provide it, and this script should use it once merged.
#
# Exit 77 (skip) when not root or when a needed tool is missing. Cleanup kills the processes
# this script started, by PID, then whatever remains in its own namespace, and deletes it.
set -eu

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespace, private libvirtd)"
for t in ip tini libvirtd virtlogd virsh qemu-img qemu-system-x86_64; do
	command -v "$t" >/dev/null 2>&1 || skip "$t not installed"
done
build=${TUAP_BUILD:?TUAP_BUILD not set}
bin=$build/tests/test_virt_real
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }

ns=tuapvirt$$
work=$(mktemp -d /var/tmp/tuap-virt.XXXXXX)
chmod 0755 "$work" # qemu runs as libvirt-qemu and must reach the pools in here
pids=""

stop_pid() { # pid: TERM, up to 20 s, then KILL
	kill "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
	if kill -0 "$1" 2>/dev/null; then
		echo "pid $1 alive after 20 s: SIGKILL"
		kill -9 "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}

cleanup() {
	rc=$?
	set +e
	for p in $pids; do stop_pid "$p"; done # libvirtd first, then virtlogd
	if ip netns list | grep -qw "$ns"; then
		# qemu and dnsmasq outlive libvirtd; they run only in our namespace
		for p in $(ip netns pids "$ns"); do stop_pid "$p"; done
		ip netns del "$ns"
	fi
	if [ $rc -ne 0 ]; then
		echo "--- libvirtd log (tail)"
		tail -30 "$work/libvirtd.out" 2>/dev/null
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- private libvirt state
mkdir -p "$work/etc" "$work/run" "$work/lib" "$work/cache" "$work/log"
cp -a /etc/libvirt/. "$work/etc/"
# the host's domains, networks and pools are not ours to start
rm -rf "$work/etc/qemu" "$work/etc/storage" "$work/etc/secrets"
# a warm QEMU capabilities cache saves the probe (seconds under load)
[ -d /var/cache/libvirt/qemu ] && cp -a /var/cache/libvirt/qemu "$work/cache/" 2>/dev/null || true
# libvirt re-probes QEMU on every call while /dev/kvm is 0600 (12 s per define, see the note);
# Debian's udev rule would make it 0660 root:kvm. Domains here are type qemu (TCG) anyway.
if [ -c /dev/kvm ] && [ "$(stat -c %a /dev/kvm)" = 600 ]; then
	chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up

# start NAME: runs NAME under tini -s in the namespace with the private mounts
start() {
	ip netns exec "$ns" sh -c '
		w=$1; shift
		mount --bind "$w/etc" /etc/libvirt &&
		mount --bind "$w/run" /run &&
		mount --bind "$w/lib" /var/lib/libvirt &&
		mount --bind "$w/cache" /var/cache/libvirt &&
		mount --bind "$w/log" /var/log/libvirt || exit 1
		exec tini -s -- "$@"' sh "$work" "$@" >"$work/$1.out" 2>&1 &
	pids="$! $pids"
}
start virtlogd
start libvirtd
libvirtd_pid=${pids%% *}

sock=$work/run/libvirt/libvirt-sock
uri="qemu:///system?socket=$sock"
i=0
until [ -S "$sock" ] && virsh -q -c "$uri" version >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "FAIL: libvirtd did not answer on $sock within 60 s"
		exit 1
	fi
	for p in $pids; do kill -0 "$p" 2>/dev/null || { echo "FAIL: daemon $p exited"; exit 1; }; done
	sleep 0.2
done
for p in $pids; do
	[ "$(ip netns identify "$p")" = "$ns" ] || { echo "FAIL: pid $p not in $ns"; exit 1; }
done

qemu-img create -q -f qcow2 "$work/base.qcow2" 64M

# the last test stops libvirtd (by this PID) to see the connection-closed event
ip netns exec "$ns" env TUAP_LIBVIRT_URI="$uri" TUAP_VIRT_WORK="$work" \
	TUAP_LIBVIRTD_PID="$libvirtd_pid" "$bin"

# the root namespace is untouched: no bridge of ours there
if ip link show virbr-tuapt >/dev/null 2>&1; then
	echo "FAIL: virbr-tuapt exists in the root network namespace"
	exit 1
fi
echo "PASS: test_virt"
