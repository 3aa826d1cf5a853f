#!/bin/bash
# virt against a real libvirtd: a private virtlogd + libvirtd (tests/lib/libvirtd.sh: under
# `tini -s`, state in bind mounts of a temp dir) inside a network namespace this script
# creates, then test_virt_real inside the same namespace with TUAP_LIBVIRT_URI pointing at that
# libvirtd. Nothing reaches the host network: the NAT network the test defines exists only in
# the namespace, which has no uplink. The last case stops libvirtd (by PID) to see the
# connection-closed event. Exits 77 (skip) when not root or a tool is missing.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/libvirtd.sh"

skip_unless_root
skip_unless_netns
skip_unless_cmd qemu-img qemu-system-x86_64
bin=${TUAP_BUILD:?TUAP_BUILD not set}/tests/test_virt_real
[ -x "$bin" ] || tuapt_die "$bin not built"

phase libvirtd
netns_new ns virt
libvirtd_start "$ns" virt_uri
tmpdir_new work # pools and the base image; 0755, so qemu's user reaches them
qemu-img create -q -f qcow2 "$work/base.qcow2" 64M

phase test_virt_real
ip netns exec "$ns" env TUAP_LIBVIRT_URI="$virt_uri" TUAP_VIRT_WORK="$work" \
	TUAP_LIBVIRTD_PID="$TUAPT_LIBVIRTD_PID" "$bin" ||
	{ tail -n 30 "$TUAPT_LIBVIRT_DIR/log/libvirtd.out" >&2; tuapt_die "test_virt_real failed"; }

# the root namespace is untouched: no bridge of ours there
! ip link show virbr-tuapt >/dev/null 2>&1 || tuapt_die "virbr-tuapt exists in the root namespace"
echo ok
