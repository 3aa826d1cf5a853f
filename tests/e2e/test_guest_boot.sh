#!/bin/bash
# test_guest_boot.sh — proves the e2e harness end to end (a guest booted without tuapd), then uses
# that guest as an existing host that tuapd pushes its agent to. Builds (or reuses)
# the guest image (deploy/guest/build-image), creates a netns, starts the private libvirtd in it
# with the standard layout (NAT mgmt network + br-pub), serves the local apt repository there,
# boots a guest from a NoCloud seed (network-config v2: DHCP on the mgmt NIC, static
# 192.0.2.10/24 on the public NIC, both matched by MAC; a user with an ssh key) and checks:
#   - the guest answers ping on 192.0.2.10 (static address applied by cloud-init/networkd);
#   - over ssh: both NICs carry the expected addresses, the hostname came from meta-data;
#   - the mgmt NIC got a DHCP lease from the in-netns libvirt network and answers ping there;
#   - apt in the guest installs nginx from the local repository (TUAP_E2E_APT=0 skips this);
#   - the guest as an existing host (when run through ctest: TUAPD, TUAP_CTL, TUAP_SHIP_AGENT):
#     tuapd in the namespace pushes tuap-agent over SSH as admin_user (passwordless sudo) to
#     this real systemd host; provision exits 0 with the installer reporting the systemd unit
#     tuap-agent@push.test, the unit active and enabled, the user created, make run in
#     /srv/tuap/push.test with its output streamed, the agent's config 0600; after SIGKILL of
#     the agent, systemd restarts it and `tuap-ctl run push.test make hello` reaches the new one;
#   - the host namespace's firewall rules and ip_forward are unchanged.
# Every phase is timed. Exits 77 (skip) when not root or without netns support.
# Env: TUAP_BOOT_DEADLINE (default 600 s), TUAPT_KEEP=1 (leave everything, guest running, for
# debugging), TUAP_E2E_APT=0 (skip the apt phase), TUAP_E2E_IMAGE_ARGS (extra build-image args).
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/libvirtd.sh"
. "$src/tests/lib/aptrepo.sh"
. "$src/tests/lib/tuap.sh"

skip_unless_root
skip_unless_netns
skip_unless_cmd virsh libvirtd virtlogd tini qemu-system-x86_64 qemu-img debootstrap mkfs.ext4 \
	ping ssh ssh-keygen iptables-save nft
if command -v xorriso >/dev/null; then mkiso=xorriso; else skip_unless_cmd genisoimage; mkiso=genisoimage; fi

BOOT_DEADLINE=${TUAP_BOOT_DEADLINE:-600}
DOM=tuapt-guest-$$
GUEST_PUB=192.0.2.10
MAC_MGMT=52:54:00:00:01:10
MAC_PUB=52:54:00:00:02:10
REPO_PORT=8080

tmpdir_new W
mkdir -p "$W/logs" "$W/seed"
TUAPT_LOGDIR=$W/logs
host_firewall_snapshot "$W/fw.before"

# --- image
phase image
# shellcheck disable=SC2086 # TUAP_E2E_IMAGE_ARGS: extra build-image arguments, word-split
IMG=$("$src/deploy/guest/build-image" ${TUAP_E2E_IMAGE_ARGS:-})
conf() { sed -n "s/^$1 = \"\\(.*\\)\";\$/\\1/p" "$IMG/catalog.conf"; }
BASE=$(conf path)
KERNEL=$(conf kernel)
INITRD=$(conf initrd)
CMDLINE=$(conf cmdline)
[ -s "$BASE" ] && [ -s "$KERNEL" ] && [ -s "$INITRD" ] && [ -n "$CMDLINE" ] ||
	tuapt_die "$IMG/catalog.conf: path/kernel/initrd/cmdline missing or not files"
[ "$(sha256sum <"$BASE" | cut -d' ' -f1)" = "$(conf sha256)" ] ||
	tuapt_die "$BASE does not match the sha256 in $IMG/catalog.conf"

# --- namespace, libvirtd, networks
phase netns+libvirtd
netns_new NS vm
libvirtd_start_default "$NS" URI
host_firewall_snapshot "$W/fw.net"
diff -u "$W/fw.before" "$W/fw.net" >&2 ||
	tuapt_die "the host namespace's firewall/ip_forward changed when the libvirt network started"
ip netns exec "$NS" iptables-save 2>/dev/null | grep -q "$TUAPT_MGMT_BRIDGE" ||
	tuapt_die "no libvirt rules for $TUAPT_MGMT_BRIDGE inside $NS (is the NAT network really there?)"

# --- apt repository
if [ "${TUAP_E2E_APT:-1}" = 1 ]; then
	phase apt-repo
	aptrepo_build "$W/repo" "$IMG/packages.txt" nginx
	aptrepo_serve "$NS" "$TUAPT_PUB_ADDR" "$REPO_PORT" "$W/repo" APT_LINE
else
	APT_LINE="# TUAP_E2E_APT=0"
fi

# --- seed
phase seed
ssh-keygen -q -t ed25519 -N '' -C tuapt -f "$W/id"
cat >"$W/seed/meta-data" <<EOF
instance-id: $DOM-$(date +%s)
local-hostname: tuapt-guest
EOF
cat >"$W/seed/network-config" <<EOF
version: 2
ethernets:
  mgmt:
    match:
      macaddress: "$MAC_MGMT"
    set-name: mgmt0
    dhcp4: true
  pub:
    match:
      macaddress: "$MAC_PUB"
    set-name: pub0
    addresses: [$GUEST_PUB/24]
EOF
cat >"$W/seed/user-data" <<EOF
#cloud-config
users:
  - name: tuap
    shell: /bin/bash
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    lock_passwd: true
    ssh_authorized_keys:
      - $(cat "$W/id.pub")
ssh_genkeytypes: [ed25519]
write_files:
  - path: /etc/apt/sources.list.d/tuap-local.list
    content: |
      $APT_LINE
EOF
if command -v cloud-init >/dev/null; then
	cloud-init schema --config-file "$W/seed/user-data" >"$W/logs/schema.out" 2>&1 ||
		{ cat "$W/logs/schema.out" >&2; tuapt_die "user-data fails cloud-init schema"; }
fi
if [ "$mkiso" = xorriso ]; then
	xorriso -as mkisofs -quiet -V cidata -J -R -o "$W/seed.iso" "$W/seed" 2>"$W/logs/iso.out"
else
	genisoimage -quiet -V cidata -J -R -o "$W/seed.iso" "$W/seed"
fi
qemu-img create -q -f qcow2 -b "$BASE" -F qcow2 "$W/overlay.qcow2"

# --- define, start
phase define
cat >"$W/domain.xml" <<EOF
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$KERNEL</kernel>
    <initrd>$INITRD</initrd>
    <cmdline>$CMDLINE</cmdline>
  </os>
  <cpu mode='maximum'/>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='scsi' model='virtio-scsi'/>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$W/overlay.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='$W/seed.iso'/>
      <target dev='sda' bus='scsi'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <source network='$TUAPT_MGMT_NET'/>
      <mac address='$MAC_MGMT'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <source bridge='$TUAPT_PUB_BRIDGE'/>
      <mac address='$MAC_PUB'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'><source path='$W/console.log'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
if command -v virt-xml-validate >/dev/null; then
	virt-xml-validate "$W/domain.xml" domain >/dev/null || tuapt_die "$W/domain.xml fails virt-xml-validate"
fi
virsh_ "$URI" define "$W/domain.xml" >/dev/null
libvirt_domain_cleanup "$URI" "$DOM"

console_tail() {
	echo "--- last lines of the guest console ($W/console.log):" >&2
	sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' "$W/console.log" 2>/dev/null | tail -n 40 >&2
}
# guest_up CMD...: CMD succeeded, or fail at once when the domain stopped running.
guest_up() {
	"$@" && return 0
	case $(virsh_ "$URI" domstate "$DOM" 2>/dev/null) in
	running*) return 1 ;;
	*) console_tail; tuapt_die "domain $DOM is no longer running" ;;
	esac
}
ping_guest() { timeout 3 ip netns exec "$NS" ping -c 1 -W 1 "$1" >/dev/null 2>&1; }
gssh() {
	timeout 120 ip netns exec "$NS" ssh -q -i "$W/id" -o BatchMode=yes -o ConnectTimeout=5 \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
		"tuap@$GUEST_PUB" "$@"
}

phase boot-to-ping
virsh_ "$URI" start "$DOM" >/dev/null
wait_for "guest to answer ping on $GUEST_PUB (static address from network-config)" "$BOOT_DEADLINE" \
	guest_up ping_guest "$GUEST_PUB" || { console_tail; exit 1; }

phase ping-to-ssh
wait_for "ssh to tuap@$GUEST_PUB (cloud-init user + key)" 300 guest_up gssh true ||
	{ console_tail; exit 1; }

phase guest-checks
# one ssh session (each costs seconds under TCG): "key value" lines
gssh 'echo "hostname $(hostname)"; echo "pubmac $(cat /sys/class/net/pub0/address)"
	ip -4 -o addr show scope global | while read -r _ dev _ a _; do echo "addr $dev $a"; done
	echo "defroute $(ip route show default)"' >"$W/guest.facts"
sed 's/^/  guest: /' "$W/guest.facts" >&2
fact() { sed -n "s/^$1 //p" "$W/guest.facts"; }
[ "$(fact hostname)" = tuapt-guest ] || tuapt_die "hostname from meta-data not applied"
[ "$(fact pubmac)" = "$MAC_PUB" ] || tuapt_die "pub0 is not the NIC with MAC $MAC_PUB"
fact addr | grep -qx "pub0 $GUEST_PUB/24" || tuapt_die "guest has no $GUEST_PUB/24 on pub0 (MAC $MAC_PUB)"
mgmt_ip=$(fact addr | sed -n 's|^mgmt0 \(198\.51\.100\.[0-9]*\)/24$|\1|p')
[ -n "$mgmt_ip" ] || tuapt_die "guest has no DHCP address from $TUAPT_MGMT_NET on mgmt0 (MAC $MAC_MGMT)"
virsh_ "$URI" net-dhcp-leases "$TUAPT_MGMT_NET" | grep -qi "$MAC_MGMT.*$mgmt_ip" ||
	tuapt_die "no lease for $MAC_MGMT/$mgmt_ip in libvirt network $TUAPT_MGMT_NET"
ping_guest "$mgmt_ip" || tuapt_die "guest does not answer ping on its mgmt address $mgmt_ip"

if [ "${TUAP_E2E_APT:-1}" = 1 ]; then
	phase guest-apt-install
	gssh 'set -e; sudo apt-get -q update; sudo DEBIAN_FRONTEND=noninteractive apt-get install -q -y \
		--no-install-recommends nginx; /usr/sbin/nginx -v' >"$W/logs/apt.out" 2>&1 ||
		{ tail -n 20 "$W/logs/apt.out" >&2; tuapt_die "apt-get update + install nginx in the guest failed"; }
	tail -n 1 "$W/logs/apt.out" | sed 's/^/  guest: /' >&2
fi

# --- the guest as an existing host: tuapd pushes the agent over SSH to a real systemd host
PUSHED=
if [ -x "${TUAPD:-}" ] && [ -x "${TUAP_CTL:-}" ] && [ -x "${TUAP_SHIP_AGENT:-}" ]; then
	phase push-tuapd
	PD=push.test
	SITE=$W/sites/$PD
	mkdir -p "$SITE/tree"
	# pushes to the guest over br-pub; the agent connects back to $TUAPT_PUB_ADDR
	tuapd_conf "$W/d" "$TUAPT_PUB_ADDR" "libvirt_uri = \"$URI\";" \
		"agent_binary = \"$TUAP_SHIP_AGENT\";" "ssh = { connect_timeout = 10; };" \
		"deadlines = { push = 300; hello = 120; users = 120; data = 120; make = 120; };"
	tuapd_start "$NS" "$W/d" TUAPD_PID
	netns_check_pid "$NS" "$TUAPD_PID"
	SSHDIR=$W/d/state/ssh
	# the operator's part: tuapd's SSH key in admin_user's authorized_keys, the host's key known
	gssh 'cat >>.ssh/authorized_keys' <"$SSHDIR/id_ed25519.pub"
	echo "$GUEST_PUB $(gssh cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1,2)" \
		>>"$SSHDIR/known_hosts"
	printf 'depends_on = %s\nadmin_user = tuap\n' "$GUEST_PUB" >"$SITE/provision.conf"
	printf 'users:\n  - name: pushuser\n    gecos: user of %s\n    shell: /bin/bash\n' "$PD" \
		>"$SITE/users.yaml"
	printf 'all:\n\tpwd > where.txt\n\t@echo "make of %s ran"\nhello:\n\t@echo "hello from %s"\n' \
		"$PD" "$PD" >"$SITE/tree/Makefile"
	tar -C "$SITE/tree" -czf "$SITE/data.tar.gz" Makefile

	phase push-provision
	rc=0
	timeout 900 "$TUAP_CTL" provision "$SITE" >"$W/logs/push.out" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		cat "$W/logs/push.out" >&2
		tail -n 30 "$W/d/tuapd.log" >&2
		tuapt_die "tuap-ctl provision of $PD onto the guest exited $rc"
	fi
	grep -q "tuap-agent@$PD.service restarted (systemd)" "$W/logs/push.out" ||
		{ cat "$W/logs/push.out" >&2; tuapt_die "the installer did not start the systemd unit"; }
	grep -q "make of $PD ran" "$W/logs/push.out" || tuapt_die "make's output was not streamed"
	unit=tuap-agent@$PD.service
	gssh "echo \"active \$(systemctl is-active $unit)\"; echo \"enabled \$(systemctl is-enabled $unit)\"
		echo \"pid \$(systemctl show -p MainPID --value $unit)\"; echo \"where \$(cat /srv/tuap/$PD/where.txt)\"
		echo \"user \$(getent passwd pushuser | cut -d: -f5)\"
		echo \"confmode \$(sudo stat -c %a /etc/tuap-agent/domains/$PD.conf)\"" >"$W/push.facts"
	sed 's/^/  guest: /' "$W/push.facts" >&2
	pfact() { sed -n "s/^$1 //p" "$W/push.facts"; }
	[ "$(pfact active)" = active ] || tuapt_die "$unit is not active"
	[ "$(pfact enabled)" = enabled ] || tuapt_die "$unit is not enabled (it would not come back after a reboot)"
	[ "$(pfact where)" = "/srv/tuap/$PD" ] || tuapt_die "make did not run in /srv/tuap/$PD"
	[ "$(pfact user)" = "user of $PD" ] || tuapt_die "user pushuser was not created"
	[ "$(pfact confmode)" = 600 ] || tuapt_die "the agent's config on the guest is not 0600"
	OLD_PID=$(pfact pid)

	# systemd brings a killed agent back, and tuapd reaches the new one
	phase push-agent-killed
	gssh "sudo systemctl kill -s KILL $unit"
	restarted() {
		local p
		p=$(gssh "systemctl show -p MainPID --value $unit")
		[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$OLD_PID" ]
	}
	wait_for "systemd restarting $unit" 60 restarted || tuapt_die "$unit was not restarted after SIGKILL"
	rc=0
	timeout 300 "$TUAP_CTL" run "$PD" make hello >"$W/logs/push-run.out" 2>&1 || rc=$?
	[ "$rc" = 0 ] && grep -q "hello from $PD" "$W/logs/push-run.out" ||
		{ cat "$W/logs/push-run.out" >&2; tuapt_die "tuap-ctl run after the agent's restart: exit $rc"; }
	tuapd_stop "$TUAPD_PID" "$W/d"
	PUSHED=", agent pushed over SSH as systemd unit $unit (restarted by systemd after SIGKILL)"
fi

if [ "${TUAPT_KEEP:-0}" = 1 ]; then
	phase
	echo "TUAPT_KEEP=1: guest left running: virsh -c '$URI'; ip netns exec $NS ssh -i $W/id tuap@$GUEST_PUB"
	exit 0
fi
phase teardown
virsh_ "$URI" destroy "$DOM" >/dev/null
virsh_ "$URI" undefine "$DOM" >/dev/null
virsh_ "$URI" net-destroy "$TUAPT_MGMT_NET" >/dev/null
host_firewall_snapshot "$W/fw.after"
diff -u "$W/fw.before" "$W/fw.after" >&2 || tuapt_die "the host namespace's firewall/ip_forward changed"
phase
echo "PASS: guest booted from $IMG, reached on $GUEST_PUB and $mgmt_ip$PUSHED"
