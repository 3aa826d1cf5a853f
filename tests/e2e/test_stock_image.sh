#!/bin/bash
# test_stock_image.sh — README's "Install on a hypervisor" path with a stock cloud image: a
# catalog entry by `url` and `sha256`, an image with no tuap in it, booted from its own disk.
#
# Set-up: `deploy/guest/build-image --stock` (a Debian-genericcloud-like image: debootstrap's
# default variant, cloud-init as packaged, a GPT disk with a boot partition and the root last,
# booted by the firmware through syslinux; no agent, no direct kernel boot), served over HTTP
# inside the namespace with the local apt repository (which holds make: stock images have none);
# a private libvirtd (tests/lib/libvirtd.sh); tuapd in the namespace, its catalog naming the
# image by URL and hash only, as images.conf's commented Debian entry does.
#
# Asserts:
#   - provision of a small site exits 0 with every phase done: tuapd downloaded the image
#     (verified against the catalog's sha256) into its cache, the seed installed the agent at
#     first boot (the image has none), the users step made the user, the packages step added
#     make, the site's Makefile ran;
#   - the guest booted from its disk (no <kernel> in the domain), through its own boot loader
#     (the cmdline is syslinux's), the root partition and filesystem grew to the site's `size`
#     (cloud-init's growpart), the agent runs from the seed's copy (/usr/local/sbin), the public
#     NIC has the static address (ping from the namespace);
#   - destroy --purge leaves no domain or pool of the site.
# (The image cache's reuse is test_image's and test_provision_vm's: a second site here would
# cost another TCG boot.)
# Exits 77 (skip) when not root or without netns support.
# Env: TUAPT_KEEP=1, TUAP_E2E_PROVISION_DEADLINE (default 1500 s).
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
	sfdisk mkfs.vfat mcopy syslinux curl ss python3 ping

vm_need_bins

DOM=stock.test
GUEST_PUB=192.0.2.20
REPO_PORT=8080
IMAGE_NAME=debian-12-genericcloud
IMAGE_FILE=debian-12-genericcloud-amd64.qcow2
PROVISION_DEADLINE=${TUAP_E2E_PROVISION_DEADLINE:-1500}

tmpdir_new W
mkdir -p "$W/logs" "$W/sites" "$W/state" "$W/run" "$W/vms" "$W/images"
TUAPT_LOGDIR=$W/logs

# --- image
phase image
IMG=$("$src/deploy/guest/build-image" --stock)
[ -s "$IMG/root.qcow2" ] || tuapt_die "build-image --stock gave no root.qcow2 in $IMG"
grep -q '^kernel' "$IMG/catalog.conf" && tuapt_die "the stock image's catalog entry names a kernel"

# --- namespace, libvirtd, networks
phase netns+libvirtd
netns_new NS vm
libvirtd_start_default "$NS" URI
libvirt_domain_cleanup "$URI" "$DOM"

# --- apt repository (make and what it needs), with the image beside it on the same server
phase apt-repo
aptrepo_build "$W/repo" "$IMG/packages.txt" make
mkdir -p "$W/repo/images"
ln -f "$IMG/root.qcow2" "$W/repo/images/$IMAGE_FILE" 2>/dev/null || cp "$IMG/root.qcow2" "$W/repo/images/$IMAGE_FILE"
aptrepo_serve "$NS" "$TUAPT_PUB_ADDR" "$REPO_PORT" "$W/repo" APT_LINE
IMAGE_URL=http://$TUAPT_PUB_ADDR:$REPO_PORT/images/$IMAGE_FILE
IMAGE_SHA=$(sha256sum "$IMG/root.qcow2" | cut -d' ' -f1)
# the entry images.conf's comments describe for Debian's image, with this server's URL
cat >"$W/images.conf" <<EOF
images = (
	{
		name = "$IMAGE_NAME";
		url = "$IMAGE_URL";
		sha256 = "$IMAGE_SHA";
		format = "qcow2";
	}
);
EOF

# --- the site: a user, and a Makefile that reports what it finds
phase site
# site_new DOMAIN ADDRESS
site_new() {
	local d=$W/sites/$1
	mkdir -p "$d/site"
	cat >"$d/provision.conf" <<EOF
# $1: test_stock_image.sh
ips=$2/24
gateway=$TUAPT_PUB_ADDR
resolvers=$TUAPT_PUB_ADDR
size=4G
memory=1024
cpus=2
image=$IMAGE_NAME
contact_email=root@$1
EOF
	cat >"$d/users.yaml" <<'EOF'
users:
  - name: webadmin
    gecos: Web administrator
    groups: [adm]
    shell: /bin/bash
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOcklKziVscoCQop8QBfAs24SChjFo/sG1kb6qcol7eD webadmin@stock.test
EOF
	# One fact per line, "fact NAME VALUE", for the test to read back from tuap-ctl log.
	cat >"$d/site/Makefile" <<'EOF'
all:
	@echo "fact agent $$(readlink -f /proc/$$(pgrep -o -x tuap-agent)/exe)"
	@echo "fact baked $$(test -e /usr/sbin/tuap-agent && echo yes || echo no)"
	@echo "fact cmdline $$(cat /proc/cmdline)"
	@echo "fact rootbytes $$(df -B1 --output=size / | tail -n 1 | tr -d ' ')"
	@echo "fact rootdev $$(findmnt -n -o SOURCE /)"
	@echo "fact user $$(id -un webadmin) $$(id -Gn webadmin | tr ' ' ,)"
	@echo "fact make $$(command -v make)"
EOF
	"$CTL" pack "$d" >"$W/logs/pack-$1.out" 2>&1 || { cat "$W/logs/pack-$1.out" >&2; tuapt_die "tuap-ctl pack $1 failed"; }
	"$CTL" validate "$d" >"$W/logs/validate-$1.out" 2>&1 ||
		{ cat "$W/logs/validate-$1.out" >&2; tuapt_die "tuap-ctl validate $1 failed"; }
}
site_new "$DOM" "$GUEST_PUB"

# --- tuapd in the namespace
phase tuapd
vm_tuapd_conf "$W" "$URI" "$W/images.conf" "$IMAGE_NAME" "$APT_LINE" "image_dir = \"$W/images\";"
vm_tuapd_start "$NS" "$W/tuapd.conf" "$W/logs/tuapd.log"

# provision DOMAIN: runs tuap-ctl provision, its output in logs/provision-DOMAIN.out
provision() {
	local rc=0
	timeout "$PROVISION_DEADLINE" "$CTL" provision "$W/sites/$1" 2>&1 | tee "$W/logs/provision-$1.out" || rc=$?
	if [ "$rc" != 0 ]; then
		echo "--- tuapd's log (last 40 lines):" >&2
		tail -n 40 "$TUAPD_LOG" >&2
		echo "--- the guest's console (last 40 lines):" >&2
		timeout 30 "$CTL" console-log -n 40 "$1" >&2 || true
		tuapt_die "tuap-ctl provision $1 exited $rc (124: no end within ${PROVISION_DEADLINE}s)"
	fi
	for p in plan image disk keys seed define hello users packages mail data make; do
		grep -q "] $p: done in " "$W/logs/provision-$1.out" || tuapt_die "provision $1 did not report phase $p done"
	done
}

# --- the first provision: download, boot from the disk, agent from the seed
phase provision
provision "$DOM"
downloads() { grep -c "GET /images/$IMAGE_FILE " "$W/logs/python3."*.log 2>/dev/null | awk -F: '{n += $NF} END {print n + 0}'; }
[ "$(downloads)" = 1 ] || tuapt_die "the image was fetched $(downloads) times from $IMAGE_URL, not once"

phase checks
"$CTL" log "$DOM" >"$W/setup.log"
fact() { sed -n "s/^make| fact $1 //p" "$W/setup.log"; }
echo "== what the site's Makefile found:" >&2
grep '^make| fact ' "$W/setup.log" | sed 's/^/  /' >&2
[ "$(fact agent)" = /usr/local/sbin/tuap-agent ] || tuapt_die "the agent runs from '$(fact agent)', not the seed's copy"
[ "$(fact baked)" = no ] || tuapt_die "the stock image has a tuap-agent of its own"
case "$(fact cmdline)" in
*root=LABEL=root*console=ttyS0,115200*) ;;
*) tuapt_die "the kernel was not started by the image's boot loader: cmdline '$(fact cmdline)'" ;;
esac
[ "$(fact rootdev)" = /dev/vda2 ] || tuapt_die "the root is '$(fact rootdev)', not the image's partition 2"
# size=4G: the root partition starts at 129 MiB; growpart + resize2fs leave ~3.8 GiB
rootbytes=$(fact rootbytes)
[ -n "$rootbytes" ] && [ "$rootbytes" -gt $((3500 * 1024 * 1024)) ] ||
	tuapt_die "the root filesystem is ${rootbytes:-?} bytes: it did not grow to the site's size (the image is 2 GiB)"
case "$(fact user)" in
"webadmin "*adm*) ;;
*) tuapt_die "users step: webadmin is '$(fact user)'" ;;
esac
[ "$(fact make)" = /usr/bin/make ] || tuapt_die "make is '$(fact make)'"
grep -q "make is not installed: adding it" "$W/logs/provision-$DOM.out" ||
	tuapt_die "the packages step did not say it added make"
virsh_ "$URI" dumpxml "$DOM" >"$W/domain.xml"
grep -q '<kernel>' "$W/domain.xml" && tuapt_die "the domain boots a kernel directly: $(grep '<kernel>' "$W/domain.xml")"
grep -q "<boot dev='hd'/>" "$W/domain.xml" || tuapt_die "the domain does not boot from its disk"
ip netns exec "$NS" ping -c 1 -W 5 "$GUEST_PUB" >/dev/null || tuapt_die "$GUEST_PUB does not answer ping"

# --- destroy --purge
phase destroy
"$CTL" destroy --purge "$DOM" >"$W/logs/destroy.out" 2>&1 ||
	{ cat "$W/logs/destroy.out" >&2; tuapt_die "tuap-ctl destroy --purge $DOM failed"; }
virsh_ "$URI" list --all --name | grep -qx "$DOM" && tuapt_die "domain $DOM still defined"
virsh_ "$URI" pool-info "tuap-$DOM" >/dev/null 2>&1 && tuapt_die "pool tuap-$DOM still defined"
stop_pid "$TUAPD_PID"
tuapd_log_clean "$TUAPD_LOG"
phase

echo "tuapd's phase times for $DOM (from the provision's output):" >&2
sed -n 's/^\[ *\([0-9.]*s\)\] \([a-z]*\): done in \([0-9.]*s\).*/  \2 \3 (at \1)/p' "$W/logs/provision-$DOM.out" >&2
echo "PASS: $DOM provisioned from a stock-like cloud image fetched by URL+sha256 ($IMG): booted from its disk, agent from the seed, root grown to 4G, make added, destroyed and purged"
