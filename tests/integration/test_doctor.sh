#!/bin/bash
# tuap-ctl doctor against a host this test builds and then breaks one way at a time: a private
# libvirtd (tests/lib/libvirtd.sh) with the management network and public bridge inside a
# network namespace, tuapd running there with its pool, a domain pool and two catalog images
# (one local, one "downloaded" into the image cache). The healthy host gives exit 0 with every
# check OK but the TCG warning (KVM cannot run stock guests on these machines: see
# shared/notes/vm-tests-on-this-machine.md); each broken host makes exactly its check FAIL,
# with its fix, and exit 1. doctor runs inside the namespace, as tuap-ctl would on the
# hypervisor. Exits 77 (skip) when not root or a tool is missing.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/libvirtd.sh"
. "$src/tests/lib/tuap.sh"

skip_unless_root
skip_unless_netns
skip_unless_cmd qemu-img nft setpriv sha256sum
: "${TUAP_CTL:?}" "${TUAPD:?}"

phase libvirtd
netns_new NS doctor
libvirtd_start_default "$NS" URI
tmpdir_new W
mkdir -p "$W/logs" "$W/images"
TUAPT_LOGDIR=$W/logs

phase images
qemu-img create -q -f qcow2 "$W/images/base.qcow2" 16M
base_sha=$(sha256sum "$W/images/base.qcow2" | cut -d' ' -f1)
qemu-img create -q -f qcow2 "$W/net.qcow2" 8M
net_sha=$(sha256sum "$W/net.qcow2" | cut -d' ' -f1)
cat >"$W/images.conf" <<EOF2
images = (
  { name = "base"; path = "$W/images/base.qcow2"; sha256 = "$base_sha"; },
  { name = "net"; url = "http://127.0.0.1:9/net.qcow2"; sha256 = "$net_sha"; }
);
EOF2
D=$W/d
mkdir -p "$D/pool/.image-cache"
# the cache file of a downloaded image: NAME-<16 hex of sha256>.FORMAT (image_volume_name)
CACHED=$D/pool/.image-cache/net-${net_sha:0:16}.qcow2
cp "$W/net.qcow2" "$CACHED"

phase tuapd
tuapd_conf "$D" "$TUAPT_MGMT_ADDR" \
	"libvirt_uri = \"$URI\";" 'virt_type = "qemu";' \
	"mgmt_network = \"$TUAPT_MGMT_NET\";" "mgmt_bridge = \"$TUAPT_MGMT_BRIDGE\";" \
	'mgmt_subnet = "198.51.100.0/24";' "public_bridge = \"$TUAPT_PUB_BRIDGE\";" \
	"image_catalog = \"$W/images.conf\";" 'default_image = "base";'
tuapd_start "$NS" "$D" TUAPD_PID
# a domain's pool, as tuapd makes it, with a small sparse disk
virsh_ "$URI" pool-define-as tuap-site.test dir --target "$D/pool/site.test" >/dev/null
cleanup_push virsh_ "$URI" pool-undefine tuap-site.test
virsh_ "$URI" pool-build tuap-site.test >/dev/null
virsh_ "$URI" pool-start tuap-site.test >/dev/null
cleanup_push virsh_ "$URI" pool-destroy tuap-site.test
virsh_ "$URI" vol-create-as tuap-site.test disk.qcow2 64M --format qcow2 >/dev/null

# doctor [CONF] [ARG...]: tuap-ctl doctor in the namespace (bounded); output in $W/out, rc in rc
doctor() {
	local conf=$1
	shift
	rc=0
	timeout 120 ip netns exec "$NS" "$TUAP_CTL" doctor --config "$conf" "$@" >"$W/out" 2>&1 ||
		rc=$?
}

# expect_fail CASE CHECK FIX-REGEX [CONF]: doctor exits 1 and only CHECK FAILs, with the fix
expect_fail() {
	local case=$1 check=$2 fix=$3 conf=${4:-$D/tuapd.conf} fails
	phase "broken: $case"
	doctor "$conf"
	sed "s/^/  $case| /" "$W/out" >&2
	[ "$rc" = 1 ] || tuapt_die "$case: doctor exited $rc, not 1"
	fails=$(grep -c '^FAIL' "$W/out" || true)
	[ "$fails" = 1 ] || tuapt_die "$case: $fails checks FAIL, not only $check"
	grep -A1 "^FAIL  $check: " "$W/out" | grep -Eq "^      fix: .*$fix" ||
		tuapt_die "$case: no FAIL of $check with a fix matching '$fix'"
}

phase healthy
doctor "$D/tuapd.conf"
cat "$W/out" >&2
[ "$rc" = 0 ] || tuapt_die "healthy host: doctor exited $rc"
for c in config tuapd groups tuapd-user libvirt mgmt-network pools public-bridge space \
	"image base" "image net" agent-endpoint firewall clock; do
	grep -q "^OK    $c: " "$W/out" || tuapt_die "healthy host: check $c is not OK"
done
# the one WARN: TCG, with the slowdown said
[ "$(grep -c '^WARN' "$W/out")" = 1 ] || tuapt_die "healthy host: WARNs other than TCG"
grep -q '^WARN  kvm: virt_type = "qemu": .*TCG.*10-20x slower' "$W/out" ||
	tuapt_die "healthy host: no TCG warning"
grep -q "^OK    tuapd: tuapd [0-9.]* answers" "$W/out" || tuapt_die "no tuapd version"
doctor "$D/tuapd.conf" --json
python3 - "$W/out" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
assert isinstance(a, list) and len(a) >= 14, a
assert {x["status"] for x in a} <= {"OK", "WARN"}, a
assert all(x["fix"] for x in a if x["status"] != "OK"), a
PY

# conf_with LINE: a copy of tuapd.conf with LINE last (settings of the same key replaced)
conf_with() {
	local key=${1%% *}
	grep -v "^$key = " "$D/tuapd.conf" >"$W/broken.conf"
	printf '%s\n' "$1" >>"$W/broken.conf"
	echo "$W/broken.conf"
}

expect_fail "network on another bridge" mgmt-network "net-undefine $TUAPT_MGMT_NET" \
	"$(conf_with 'mgmt_bridge = "virbr-other";')"
grep -q "exists on bridge $TUAPT_MGMT_BRIDGE, not virbr-other" "$W/out" || tuapt_die "no bridge named"

expect_fail "public bridge missing" public-bridge 'public_bridge = "NAME"' \
	"$(conf_with 'public_bridge = "br-gone";')"

virsh_ "$URI" pool-define-as tuap-other.test dir --target "$W/elsewhere" >/dev/null
expect_fail "pool elsewhere" pools "pool-undefine tuap-other.test"
grep -q "storage pool tuap-other.test exists at $W/elsewhere, not at $D/pool/other.test" "$W/out" ||
	tuapt_die "the pool's two paths are not named"
virsh_ "$URI" pool-undefine tuap-other.test >/dev/null

head -c 4096 /dev/urandom >>"$CACHED"
expect_fail "cached image corrupt" "image net" "rm $CACHED"
cp "$W/net.qcow2" "$CACHED"

virsh_ "$URI" vol-create-as tuap-site.test huge.qcow2 100T --format qcow2 >/dev/null
expect_fail "disks outgrow pool_root" space 'move pool_root'
grep -q "may still grow by 100.0 TiB" "$W/out" || tuapt_die "the growth is not said"
virsh_ "$URI" vol-delete --pool tuap-site.test huge.qcow2 >/dev/null

ip netns exec "$NS" nft -f - <<'EOF2'
table inet tuapt_fw {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport { 22, 7807 } counter drop
	}
}
EOF2
expect_fail "firewall drops the agents' port" firewall \
	"nft insert rule inet tuapt_fw input iifname \"$TUAPT_MGMT_BRIDGE\" tcp dport 7807 accept"
ip netns exec "$NS" nft delete table inet tuapt_fw

# guests would connect where tuapd does not listen
expect_fail "agent_endpoint not listened on" agent-endpoint \
	'agent_listen = "tcp://198.51.100.1:7808"' "$(conf_with 'agent_endpoint = "tcp://198.51.100.1:7808";')"

expect_fail "no group" groups "addgroup --system tuapt-nogroup" \
	"$(conf_with 'ctl_group = "tuapt-nogroup";')"

# the caller not in ctl_group (root): nobody, in group libvirt only
phase "broken: caller not in the group"
chmod 0644 "$D/tuapd.conf"
rc=0
HOME=$W timeout 120 ip netns exec "$NS" setpriv --reuid=65534 --regid=65534 \
	--groups="$(getent group libvirt | cut -d: -f3)" \
	"$TUAP_CTL" doctor --config "$D/tuapd.conf" >"$W/out" 2>&1 || rc=$?
sed 's/^/  nobody| /' "$W/out" >&2
[ "$rc" = 1 ] || tuapt_die "nobody: doctor exited $rc"
[ "$(grep -c '^FAIL' "$W/out")" = 1 ] || tuapt_die "nobody: more than the groups check FAILs"
grep -A1 '^FAIL  groups: nobody is not in group root' "$W/out" |
	grep -q '^      fix: sudo adduser nobody root, then log in again' ||
	tuapt_die "nobody: no groups FAIL with its fix"

phase "broken: tuapd stopped"
tuapd_stop "$TUAPD_PID" "$D"
expect_fail "tuapd stopped" tuapd "systemctl start tuapd"
grep -q "^WARN  agent-endpoint: not checked: tuapd was not reached" "$W/out" ||
	tuapt_die "the agent endpoint is not said unchecked"
phase
echo "ok: healthy host and 10 broken ones"
