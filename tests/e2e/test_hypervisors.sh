#!/bin/bash
# test_hypervisors.sh — one tuapd driving two hypervisors: two private libvirtds in two network
# namespaces, real guests under TCG. Placement by free memory, pinning and labels, the full
# provision of a site on the second hypervisor, list/status across both, and that hypervisor's
# libvirtd killed in the middle of the provision (a clear error, nothing lost, the job resumed
# once it is back).
#
# Set-up: the guest image with the agent baked in (deploy/guest/build-image --agent), and
#   - namespace A: hypervisor "hv-a", a private libvirtd (tests/lib/libvirtd.sh's standard
#     layout: NAT network tuap-mgmt on virbr-mgmt 198.51.100.1/24, bridge br-pub 192.0.2.1/24),
#     the local apt repository with nginx on 192.0.2.1:8080, and tuapd, which listens for
#     agents on 0.0.0.0:7807;
#   - namespace B: hypervisor "hv-b", a second private libvirtd with the same layout and the same
#     repository on the same address (one apt_source serves guests on both), listening on TCP
#     203.0.113.2:16509 without authentication, restartable on its state (libvirtd_kill,
#     libvirtd_restart; its guests' qemu stay under the supervisor's tini);
#   - a veth 203.0.113.1 (A) <-> 203.0.113.2 (B): tuapd reaches hv-b as
#     qemu+tcp://203.0.113.2/system, and hv-b's guests reach tuapd at tcp://203.0.113.1:7807
#     (hv-b's agent_endpoint) from hv-b's management network, which B forwards and libvirt
#     masquerades (tuapd.conf(5): agent_endpoint "must route from that hypervisor's management
#     network"; the seed's network-config routes it there). B's public network is not
#     masqueraded (A has 192.0.2.0/24 on its own br-pub, so an agent coming from there gets no
#     answer); counters in B's mangle table tell which way the agent came;
#   - on hv-a an inert foreign domain (no tuap metadata, never started) whose <memory> is the
#     host's memory minus 2 GiB, so that by the committed count hv-a has 2 GiB free;
#   - tuapd.conf's `hypervisors` list: hv-a (the top-level keys) and hv-b (its URI, agent
#     endpoint, pool root $W/vms-b, label "ssd"); no reserves, so the figures are exact.
#
# Asserts:
#   - tuapd reaches both: `tuap-ctl hypervisors` lists hv-a and hv-b "up" with their URIs, hv-a's
#     committed memory includes the foreign domain's, hv-b carries the label ssd; `tuap-ctl list`
#     does not show the foreign domain;
#   - `provision --dry-run` (its "hypervisor: " line): the example (1 GiB) unpinned -> hv-b,
#     placed; pinned to hv-a with 512 MiB -> hv-a; 6 GiB pinned to hv-a -> hv-a does not fit
#     (memory), exit 1; hypervisor_labels=ssd -> hv-b; ssd,gpu (no hypervisor has both) ->
#     none fits, with a reason for each of hv-a and hv-b, exit 1;
#   - the 6 GiB site pinned to hv-a, provisioned for real, fails (exit 1) in plan saying it does
#     not fit, and nothing of it is made on either hypervisor (no domain, no pool);
#   - the example, unpinned, provisioned: plan says "on hv-b"; hv-b's libvirtd is killed
#     (SIGKILL) as soon as the image phase starts (the veth throttled, so the phase lasts):
#     the provision exits 1 with the image phase FAILED, its message naming hv-b, and
#     no disk phase; `list` and `status` show the site on hv-b with VM "unreachable", its job
#     failed in image (not lost) and its journal kept; `tuap-ctl hypervisors` shows hv-b
#     unreachable, hv-a up;
#   - hv-b's libvirtd restarted: tuapd sees hv-b up again; `provision --resume` finishes every
#     phase, the agent coming to tuapd from hv-b's management network (a fast failure when it
#     comes only from the public one) (each of plan..make reported done by one of the two runs); the site answers HTTP
#     from inside B on 192.0.2.10 with the example's index.html; status: VM running, job done,
#     hypervisor hv-b, users step done; the base image is in hv-b's tuap-images pool, below
#     hv-b's pool_root; the domain on hv-b carries tuap's metadata; nothing of it on hv-a;
#   - a second site pinned to hv-a (provision --detach) is defined and running on hv-a, in its
#     hello phase; a second provision of it meanwhile is refused (a job is running); `list`
#     (text and --json) shows it on hv-a and the example on hv-b; destroy --purge takes it away
#     from hv-a;
#   - hv-b's libvirtd killed again with the example running: its qemu goes on (same PID) and
#     the site still answers; `list` says unreachable; restarted, libvirt and tuapd see the VM
#     running again;
#   - tuapd restarted (SIGTERM, clean stop): `list` shows the example on hv-b again (found by
#     its metadata);
#   - destroy --purge of the example leaves nothing of it on hv-b (domain, pool, volume, pool
#     directory) nor on hv-a, no key, no journal; the foreign domain on hv-a is untouched;
#     tuapd stops cleanly on SIGTERM without sanitizer reports; the host namespace's firewall
#     and ip_forward are unchanged.
# One full guest boot (the example on hv-b); the second site is destroyed in its hello phase.
# Every phase is timed. Exits 77 (skip) when not root, without netns support, or without a
# self-contained agent.
# Env: TUAPT_KEEP=1, TUAPT_KEEP_TMP=1, TUAP_E2E_PROVISION_DEADLINE (default 1500 s),
# TUAP_E2E_IMAGE_ARGS (extra build-image arguments).
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
	curl ss iptables iptables-save nft python3

vm_need_bins

DOM=example.test  # site 1: unpinned, lands on hv-b: the one full boot
DOM2=second.test  # site 2: pinned to hv-a, destroyed in its hello phase
BIG=big.test      # pinned to hv-a, asks more memory than hv-a has free
GUEST_PUB=192.0.2.10
GUEST2_PUB=192.0.2.11
REPO_PORT=8080
ADDR_A=203.0.113.1
ADDR_B=203.0.113.2
URI_B_TCP=qemu+tcp://$ADDR_B/system
ENDPOINT_B=tcp://$ADDR_A:7807
FOREIGN=foreign-big
PROVISION_DEADLINE=${TUAP_E2E_PROVISION_DEADLINE:-1500}
PHASES="plan image disk keys seed define hello users packages mail data make"

tmpdir_new W
mkdir -p "$W/logs" "$W/sites" "$W/state" "$W/run" "$W/vms" "$W/vms-b"
TUAPT_LOGDIR=$W/logs
host_firewall_snapshot "$W/fw.before"

# --- image
phase image
vm_image "$W"

# --- two namespaces joined by a veth, a libvirtd in each
phase netns+libvirtd
netns_new NS_A hva
netns_new NS_B hvb
netns_veth "$NS_A" veth-a "$ADDR_A/24" "$NS_B" veth-b "$ADDR_B/24"
libvirtd_start_default "$NS_A" URI_A
TUAPT_LIBVIRT_LISTEN=$ADDR_B TUAPT_LIBVIRT_RESTARTABLE=1 libvirtd_start_default "$NS_B" URI_B
DIR_B=$TUAPT_LIBVIRT_DIR
[ "$TUAPT_LIBVIRT_TCP_URI" = "$URI_B_TCP" ] || tuapt_die "hv-b's TCP URI is '$TUAPT_LIBVIRT_TCP_URI'"
for d in "$DOM" "$DOM2" "$BIG"; do
	libvirt_domain_cleanup "$URI_A" "$d"
	libvirt_domain_cleanup "$URI_B" "$d"
done
# what tuapd will do: reach hv-b's libvirtd over TCP from A
ip netns exec "$NS_A" timeout 20 virsh -q -c "$URI_B_TCP" net-list --name | grep -x "$TUAPT_MGMT_NET" >/dev/null ||
	tuapt_die "hv-b's libvirtd is not reachable from $NS_A as $URI_B_TCP"
# B forwards (libvirt turned it on with its NAT network); which way hv-b's agents come to
# tuapd is counted (rules without a target); the public network is not masqueraded
[ "$(ip netns exec "$NS_B" cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || tuapt_die "ip_forward is off in $NS_B"
for net in 198.51.100.0/24 192.0.2.0/24; do
	ip netns exec "$NS_B" iptables -t mangle -A PREROUTING -s "$net" -d "$ADDR_A" -p tcp --dport 7807
done
# agent_packets NET: packets from NET to tuapd's agent port that came into B
agent_packets() {
	ip netns exec "$NS_B" iptables -t mangle -L PREROUTING -v -n -x |
		awk -v n="$1" -v a="$ADDR_A" '{ for (i = 2; i < NF; i++) if ($i == n && $(i + 1) == a) { print $1; f = 1 } }
			END { if (!f) print 0 }'
}

# the foreign domain: on hv-a, no tuap metadata, never started, nearly all the host's memory
HOST_KIB=$(virsh_ "$URI_A" nodeinfo | awk '/^Memory size:/ { print $3 }')
[ "${HOST_KIB:-0}" -gt $((4 * 1024 * 1024)) ] || tuapt_die "hv-a's memory is '${HOST_KIB:-?}' KiB: 4 GiB at least are needed"
FOREIGN_KIB=$((HOST_KIB - 2 * 1024 * 1024))
cat >"$W/foreign.xml" <<EOF
<domain type='qemu'>
  <name>$FOREIGN</name>
  <memory unit='KiB'>$FOREIGN_KIB</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
</domain>
EOF
virsh_ "$URI_A" define "$W/foreign.xml" >/dev/null
cleanup_push virsh_ "$URI_A" undefine "$FOREIGN"

# --- one apt repository, served on the same address in both namespaces
phase apt-repo
aptrepo_build "$W/repo" "$IMG/packages.txt" nginx
aptrepo_serve "$NS_A" "$TUAPT_PUB_ADDR" "$REPO_PORT" "$W/repo" APT_LINE
aptrepo_serve "$NS_B" "$TUAPT_PUB_ADDR" "$REPO_PORT" "$W/repo" APT_LINE_B
[ "$APT_LINE" = "$APT_LINE_B" ] || tuapt_die "the two repositories' lines differ"

# --- the sites: copies of the example
phase sites
# site_new DIR NAME ADDRESS MEMORY CPUS [LINE...]: DIR/NAME, the example with that address,
# memory and cpus, and LINEs appended to its provision.conf; validated
site_new() {
	local dir=$1 name=$2 addr=$3 mem=$4 cpus=$5 l
	shift 5
	mkdir -p "$dir"
	cp -r "$src/examples/$DOM" "$dir/$name"
	rm -f "$dir/$name/data.tar.gz"
	sed -i -e "s|^ips=.*|ips=$addr/24|" -e "s|^memory=.*|memory=$mem|" -e "s|^cpus=.*|cpus=$cpus|" \
		"$dir/$name/provision.conf"
	for l in "$@"; do printf '%s\n' "$l" >>"$dir/$name/provision.conf"; done
	"$CTL" validate "$dir/$name" >"$W/logs/validate-$name.out" 2>&1 ||
		{ cat "$W/logs/validate-$name.out" >&2; tuapt_die "tuap-ctl validate $dir/$name failed"; }
}
site_new "$W/sites" "$DOM" "$GUEST_PUB" 1024 2
SITE=$W/sites/$DOM
[ "$IMAGE_NAME" = "$(sed -n 's/^image=//p' "$SITE/provision.conf")" ] ||
	tuapt_die "the example's image is not the catalog's '$IMAGE_NAME'"
site_new "$W/sites" "$DOM2" "$GUEST2_PUB" 512 1 "hypervisor=hv-a"
SITE2=$W/sites/$DOM2
site_new "$W/sites" "$BIG" 192.0.2.12 6144 1 "hypervisor=hv-a"
site_new "$W/dry/ssd" "$DOM" "$GUEST_PUB" 1024 2 "hypervisor_labels=ssd"
site_new "$W/dry/gpu" "$DOM" "$GUEST_PUB" 1024 2 "hypervisor_labels=ssd,gpu"
for s in "$SITE" "$SITE2"; do
	"$CTL" pack "$s" >"$W/logs/pack.out" 2>&1 || { cat "$W/logs/pack.out" >&2; tuapt_die "tuap-ctl pack $s failed"; }
done

# --- tuapd in A, with both hypervisors
phase tuapd
TUAPT_AGENT_LISTEN=0.0.0.0 # agents of hv-a come on 198.51.100.1, those of hv-b on 203.0.113.1
vm_tuapd_conf "$W" "$URI_A" "$W/images.conf" "$IMAGE_NAME" "$APT_LINE" \
	"agent_endpoint = \"tcp://$TUAPT_MGMT_ADDR:7807\";" \
	"hypervisors = (" \
	"  { name = \"hv-a\"; libvirt_uri = \"$URI_A\";" \
	"    reserve_memory = 0; reserve_cpus = 0; reserve_disk = 0; }," \
	"  { name = \"hv-b\"; libvirt_uri = \"$URI_B_TCP\";" \
	"    agent_endpoint = \"$ENDPOINT_B\";" \
	"    pool_root = \"$W/vms-b\";" \
	"    mgmt_network = \"$TUAPT_MGMT_NET\"; mgmt_subnet = \"198.51.100.0/24\"; mgmt_bridge = \"$TUAPT_MGMT_BRIDGE\";" \
	"    public_bridge = \"$TUAPT_PUB_BRIDGE\"; virt_type = \"qemu\";" \
	"    reserve_memory = 0; reserve_cpus = 0; reserve_disk = 0;" \
	"    cpu_overcommit = 4.0; max_guests = 0;" \
	"    labels = [\"ssd\"]; }" \
	");"
start_tuapd() { vm_tuapd_start "$NS_A" "$W/tuapd.conf" "$1"; }
start_tuapd "$W/logs/tuapd.log"

show_failure() {
	echo "--- tuapd's log (last 40 lines):" >&2
	tail -n 40 "$TUAPD_LOG" >&2
	echo "--- the guest's console (last 30 lines):" >&2
	timeout 30 "$CTL" console-log -n 30 "${1:-$DOM}" >&2 || true
}

# hv_facts FILE: `tuap-ctl hypervisors --json` as "NAME KEY VALUE" lines (labels comma-joined)
hv_facts() {
	ctl hypervisors --json >"$W/hv.json" || return 1
	python3 - "$W/hv.json" >"$1" <<'EOF'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
hv = [e for e in events if e.get("type") == "hypervisors"]
assert hv, "no hypervisors event in %r" % events
for h in hv[0]["hypervisors"]:
    for k, v in h.items():
        if isinstance(v, list):
            v = ",".join(map(str, v))
        print(h["name"], k, v)
EOF
}
# hv NAME KEY: from the last hv_facts into $W/hv.facts
hv() { awk -v n="$1" -v k="$2" '$1 == n && $2 == k { print $3 }' "$W/hv.facts"; }
# hv_state_is NAME STATE: tuapd's `hypervisors` says NAME is STATE (for wait_for)
hv_state_is() { hv_facts "$W/hv.facts" && [ "$(hv "$1" state)" = "$2" ]; }

# dom_facts DOMAIN FILE [list]: status --json (or list --json) for DOMAIN as "KEY VALUE" lines,
# the steps as "step NAME STATE"; nothing when tuapd does not show DOMAIN
dom_facts() {
	local what=status
	[ "${3:-}" = list ] && what=list
	if [ "$what" = list ]; then ctl list --json >"$W/dom.json"; else ctl status --json "$1" >"$W/dom.json"; fi || return 1
	python3 - "$W/dom.json" "$1" >"$2" <<'EOF'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
doms = [d for e in events for d in (e.get("domains") or [])]
for d in doms:
    if d.get("domain") != sys.argv[2]:
        continue
    for k in ("vm", "job", "phase", "hypervisor", "agent_version", "job_id"):
        print(k, d.get(k, "-"))
    for name, state in (d.get("steps") or {}).items():
        print("step", name, state)
EOF
}
fact() { sed -n "s/^$2 //p" "$1"; }

# list_row DOMAIN: DOMAIN's row of `tuap-ctl list` (DOMAIN HYPERVISOR VM JOB PHASE AGENT)
list_row() { ctl list | awk -v d="$1" '$1 == d'; }

# nothing_of HV URI DOMAIN: libvirt at URI has no domain DOMAIN and no pool named after it
nothing_of() {
	virsh_ "$2" list --all --name | grep -x "$3" >/dev/null && tuapt_die "$1 has a domain $3"
	virsh_ "$2" pool-list --all --name | grep -F "$3" && tuapt_die "$1 has a pool of $3"
	return 0
}

# --- both hypervisors seen; the foreign domain counted, not listed
phase hypervisors
ctl hypervisors >"$W/hypervisors.out" || { cat "$W/hypervisors.out" >&2; tuapt_die "tuap-ctl hypervisors failed"; }
sed 's/^/  hypervisors: /' "$W/hypervisors.out" >&2
for h in hv-a hv-b; do
	awk -v h="$h" '$1 == h && $2 == "up"' "$W/hypervisors.out" | grep . >/dev/null ||
		tuapt_die "tuap-ctl hypervisors does not show $h up"
done
grep -E '^hv-b ' "$W/hypervisors.out" | grep -F "$URI_B_TCP" >/dev/null || tuapt_die "tuap-ctl hypervisors: hv-b's line has not its URI"
grep -E '^hv-b ' "$W/hypervisors.out" | grep -w ssd >/dev/null || tuapt_die "tuap-ctl hypervisors: hv-b's line has not its label ssd"
hv_facts "$W/hv.facts" || tuapt_die "tuap-ctl hypervisors --json failed"
[ "$(hv hv-a state) $(hv hv-b state)" = "up up" ] || tuapt_die "hypervisors --json: hv-a '$(hv hv-a state)', hv-b '$(hv hv-b state)'"
[ "$(hv hv-a uri)" = "$URI_A" ] || tuapt_die "hypervisors --json: hv-a's uri is '$(hv hv-a uri)'"
[ "$(hv hv-b uri)" = "$URI_B_TCP" ] || tuapt_die "hypervisors --json: hv-b's uri is '$(hv hv-b uri)'"
[ "$(hv hv-b labels)" = ssd ] || tuapt_die "hypervisors --json: hv-b's labels are '$(hv hv-b labels)'"
FOREIGN_MIB=$((FOREIGN_KIB / 1024))
[ "$(hv hv-a memory_committed_mib)" -ge "$FOREIGN_MIB" ] ||
	tuapt_die "hv-a's committed memory $(hv hv-a memory_committed_mib) MiB leaves out the foreign domain's $FOREIGN_MIB MiB"
[ "$(hv hv-b memory_committed_mib)" -lt 1024 ] || tuapt_die "hv-b's committed memory is $(hv hv-b memory_committed_mib) MiB with no domain"
# (not compared with HOST_KIB: this host's node memory moves by some 100 MiB from minute to minute)
[ "$(hv hv-a memory_total_mib)" -gt "$FOREIGN_MIB" ] || tuapt_die "hv-a's memory_total_mib is $(hv hv-a memory_total_mib)"
ctl list >"$W/list.out"
grep -q "$FOREIGN" "$W/list.out" && tuapt_die "tuap-ctl list shows the foreign domain: $(cat "$W/list.out")"

# --- placement, without creating anything
phase dry-run
# dry_run DIR WANT_RC REGEX: provision --dry-run DIR exits WANT_RC and prints a line matching
# ^hypervisor: REGEX. (A choice is the name first, then why; a refusal says why for each.)
dry_run() {
	local rc=0 out=$W/logs/dry-run.$((++dry_n)).out
	ctl provision --dry-run "$1" >"$out" 2>&1 || rc=$?
	grep -E '^hypervisor: ' "$out" | sed "s|^|  dry-run ${1#"$W"/}: |" >&2 || true
	[ "$rc" = "$2" ] || { cat "$out" >&2; tuapt_die "provision --dry-run $1 exited $rc, not $2"; }
	grep -qE "^hypervisor: $3" "$out" || { cat "$out" >&2; tuapt_die "provision --dry-run $1: no line 'hypervisor: $3'"; }
}
dry_n=0
dry_run "$SITE" 0 'hv-b[:( ].*placed'
dry_run "$SITE2" 0 'hv-a[:( ]'
dry_run "$W/sites/$BIG" 1 '(.* )?hv-a (.* )?does not fit: .*memory'
dry_run "$W/dry/ssd/$DOM" 0 'hv-b[:( ]'
dry_run "$W/dry/gpu/$DOM" 1 '(.* )?none fits: '
grep -qE '^hypervisor: .*none fits: (.*hv-a: .*hv-b: |.*hv-b: .*hv-a: )' "$W/logs/dry-run.5.out" ||
	tuapt_die "'none fits' does not say why for each hypervisor: $(grep '^hypervisor: ' "$W/logs/dry-run.5.out")"

# --- pinned to a hypervisor it does not fit on: refused in plan, nothing made
phase pinned-refused
rc=0
ctl provision "$W/sites/$BIG" >"$W/logs/provision-big.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$W/logs/provision-big.out" >&2; tuapt_die "provision of $BIG (6 GiB pinned to hv-a) exited $rc, not 1"; }
grep -qE '\] plan: FAILED: .*hv-a.*(does not fit|memory)' "$W/logs/provision-big.out" ||
	{ cat "$W/logs/provision-big.out" >&2; tuapt_die "provision of $BIG did not fail in plan saying hv-a does not fit"; }
sed -n 's/^/  big: /p' "$W/logs/provision-big.out" | grep FAILED >&2 || true
nothing_of hv-a "$URI_A" "$BIG"
nothing_of hv-b "$URI_B" "$BIG"
ctl destroy --purge "$BIG" >"$W/logs/destroy-big.out" 2>&1 || true

# --- the example, unpinned: placed on hv-b; hv-b's libvirtd killed as its image phase starts.
# Why there: the kill follows the "image: started" line at once (tail -f), and the image phase
# then needs hv-b's libvirtd for all it does (its tuap-images pool, the stream upload of the
# 430 MiB base image); the veth is throttled for this attempt (400 Mbit/s: the upload would
# take ~9 s) so that even a kill delayed by a loaded machine lands inside the phase. The
# phases after it are too short to aim at (disk to define: 0.4 s here), and from hello on
# tuapd talks to the agent only: a kill there would not fail the job at all.
phase provision-killed
ip netns exec "$NS_A" tc qdisc add dev veth-a root tbf rate 400mbit burst 256kb latency 400ms
"$CTL" provision "$SITE" >"$W/logs/provision.out" 2>&1 &
CTL_PID=$!
ctl_ended() { ! kill -0 "$CTL_PID" 2>/dev/null; }
if ! timeout 600 grep -q -m 1 '\] image: started' < <(tail --pid="$CTL_PID" -n +1 -f "$W/logs/provision.out"); then
	cat "$W/logs/provision.out" >&2
	show_failure
	tuapt_die "the provision never started its image phase"
fi
libvirtd_kill "$DIR_B"
tuapt_log "hv-b's libvirtd killed at: $(tail -n 1 "$W/logs/provision.out")"
wait_for "tuap-ctl provision ending after hv-b's libvirtd died" 300 ctl_ended ||
	{ cat "$W/logs/provision.out" >&2; show_failure; tuapt_die "the provision did not end within 300 s of hv-b going down"; }
rc=0
wait "$CTL_PID" || rc=$?
sed 's/^/  provision: /' "$W/logs/provision.out" >&2
[ "$rc" = 1 ] || { show_failure; tuapt_die "the provision exited $rc with hv-b down, not 1"; }
ip netns exec "$NS_A" tc qdisc del dev veth-a root
grep -qE '\] plan: done in .*on hv-b' "$W/logs/provision.out" || tuapt_die "plan's done message does not say 'on hv-b'"
FAILED_LINE=$(grep -E '\] [a-z]+: FAILED' "$W/logs/provision.out" | head -n 1)
FAILED_PHASE=$(sed -n 's/^\[ *[0-9.]*s\] \([a-z]*\): FAILED.*/\1/p' <<<"$FAILED_LINE")
[ "$FAILED_PHASE" = image ] || tuapt_die "the failure is not the image phase's: '$FAILED_LINE'"
grep -qF "hv-b" <<<"$FAILED_LINE" || tuapt_die "the failure does not name hv-b: '$FAILED_LINE'"
grep -q '\] disk: ' "$W/logs/provision.out" && tuapt_die "the disk phase started though hv-b was down"

phase unreachable
dom_facts "$DOM" "$W/st.facts"
[ "$(fact "$W/st.facts" hypervisor)" = hv-b ] || tuapt_die "status: $DOM's hypervisor is '$(fact "$W/st.facts" hypervisor)', not hv-b"
[ "$(fact "$W/st.facts" vm)" = unreachable ] || tuapt_die "status: $DOM's VM is '$(fact "$W/st.facts" vm)', not unreachable"
[ "$(fact "$W/st.facts" job)" = failed ] || tuapt_die "status: $DOM's job is '$(fact "$W/st.facts" job)', not failed"
[ "$(fact "$W/st.facts" phase)" = "$FAILED_PHASE" ] || tuapt_die "status: $DOM's phase is '$(fact "$W/st.facts" phase)', not $FAILED_PHASE"
read -r _ h vm _ <<<"$(list_row "$DOM")"
[ "$h $vm" = "hv-b unreachable" ] || tuapt_die "tuap-ctl list: $DOM is '$(list_row "$DOM")'"
JOURNAL=$W/state/domains/$DOM/journal
[ -s "$JOURNAL" ] || tuapt_die "the journal $JOURNAL is gone"
grep -qP "^phase\t[^\t]*\tplan\tdone" "$JOURNAL" || tuapt_die "the journal has no 'phase plan done'"
hv_facts "$W/hv.facts" || tuapt_die "tuap-ctl hypervisors --json failed with hv-b down"
[ "$(hv hv-b state)" = unreachable ] || tuapt_die "hypervisors: hv-b is '$(hv hv-b state)' with its libvirtd dead"
[ "$(hv hv-a state)" = up ] || tuapt_die "hypervisors: hv-a is '$(hv hv-a state)' with hv-b down"
ctl hypervisors | awk '$1 == "hv-b" && $2 == "unreachable"' | grep . >/dev/null || tuapt_die "tuap-ctl hypervisors does not print hv-b unreachable"

# --- hv-b back: the job resumes and ends
phase resume
libvirtd_restart "$DIR_B"
wait_for "tuapd seeing hv-b up again" 120 hv_state_is hv-b up || tuapt_die "tuapd does not see hv-b up after its restart"
timeout "$PROVISION_DEADLINE" "$CTL" provision --resume "$SITE" >"$W/logs/provision-resume.out" 2>&1 &
CTL_PID=$!
# The hello: done, or the agent's packets come only from the public network for 60 s (the way
# tuapd.conf(5) rules out: fail now, not at the 900 s hello deadline)
public_since=
hello_or_wrong_way() {
	grep -q '\] hello: done in ' "$W/logs/provision-resume.out" && return 0
	ctl_ended && return 0
	if [ "$(agent_packets 192.0.2.0/24)" -gt 0 ] &&
		[ "$(agent_packets 198.51.100.0/24)" = 0 ]; then
		public_since=${public_since:-$(date +%s)}
		[ $(($(date +%s) - public_since)) -lt 60 ] || return 0
	fi
	return 1
}
if ! wait_for "$DOM's hello from hv-b" 600 hello_or_wrong_way ||
	! grep -q '\] hello: done in ' "$W/logs/provision-resume.out"; then
	ctl_ended || kill "$CTL_PID"
	wait "$CTL_PID" || true
	cat "$W/logs/provision-resume.out" >&2
	show_failure
	tuapt_die "no hello from $DOM's agent on hv-b: it sent $(agent_packets 192.0.2.0/24) packets to $ENDPOINT_B from the public network (192.0.2.0/24) and $(agent_packets 198.51.100.0/24) from the management network (198.51.100.0/24), which is the way tuapd.conf(5) says agent_endpoint is reached (the seed's network-config routes it there)"
fi
rc=0
wait "$CTL_PID" || rc=$?
cat "$W/logs/provision-resume.out"
if [ "$rc" != 0 ]; then
	show_failure
	tuapt_die "tuap-ctl provision --resume exited $rc (124: no end within ${PROVISION_DEADLINE}s)"
fi
[ "$(agent_packets 198.51.100.0/24)" -gt 0 ] ||
	tuapt_die "$DOM's agent did not come to tuapd from hv-b's management network"
tuapt_log "$DOM's agent to tuapd: $(agent_packets 198.51.100.0/24) packets from hv-b's management network, $(agent_packets 192.0.2.0/24) from its public one"
grep -q "] $FAILED_PHASE: done in " "$W/logs/provision-resume.out" || tuapt_die "the resumed job did not do $FAILED_PHASE"
for p in $PHASES; do
	cat "$W/logs/provision.out" "$W/logs/provision-resume.out" | grep "] $p: done in " >/dev/null ||
		tuapt_die "phase $p was reported done by neither run"
done

phase checks
http_get() { ip netns exec "$NS_B" curl -sS --max-time 10 "http://$GUEST_PUB/" -o "$W/page.html"; }
wait_for "HTTP GET http://$GUEST_PUB/ inside $NS_B" 60 http_get || { show_failure; exit 1; }
cmp -s "$W/page.html" "$SITE/site/public/index.html" ||
	tuapt_die "http://$GUEST_PUB/ is not the example's index.html: $(head -c 200 "$W/page.html")"
dom_facts "$DOM" "$W/st.facts"
[ "$(fact "$W/st.facts" vm)" = running ] || tuapt_die "status: VM is '$(fact "$W/st.facts" vm)', not running"
[ "$(fact "$W/st.facts" job)" = "done" ] || tuapt_die "status: job is '$(fact "$W/st.facts" job)', not done"
[ "$(fact "$W/st.facts" hypervisor)" = hv-b ] || tuapt_die "status: hypervisor '$(fact "$W/st.facts" hypervisor)'"
fact "$W/st.facts" step | grep -x "users done" >/dev/null || tuapt_die "status: the users step is not done: $(fact "$W/st.facts" step | tr '\n' ,)"
virsh_ "$URI_B" list --name | grep -x "$DOM" >/dev/null || tuapt_die "$DOM does not run on hv-b"
virsh_ "$URI_B" dumpxml "$DOM" | grep '<tuap:domain xmlns:tuap=' >/dev/null || tuapt_die "$DOM on hv-b has no tuap metadata"
[ -n "$(virsh_ "$URI_B" vol-list tuap-images)" ] || tuapt_die "no base image in hv-b's tuap-images pool"
virsh_ "$URI_B" pool-dumpxml tuap-images | grep "<path>$W/vms-b/" >/dev/null ||
	tuapt_die "hv-b's tuap-images pool is not below its pool_root $W/vms-b: $(virsh_ "$URI_B" pool-dumpxml tuap-images | grep '<path>')"
nothing_of hv-a "$URI_A" "$DOM"

# --- a second site pinned to hv-a, while the example runs on hv-b: list across both
phase hv-a-site
ctl provision --detach "$SITE2" >"$W/logs/provision2.out" 2>&1 ||
	{ cat "$W/logs/provision2.out" >&2; tuapt_die "provision --detach $DOM2 failed"; }
rc=0
ctl provision "$SITE2" >"$W/logs/provision2-again.out" 2>&1 || rc=$?
if [ "$rc" = 0 ] || ! grep -q "$DOM2: job .* is running" "$W/logs/provision2-again.out"; then
	cat "$W/logs/provision2-again.out" >&2
	tuapt_die "a second provision of $DOM2 while its job runs was not refused (exit $rc)"
fi
on_a_in_hello() {
	[ "$(virsh_ "$URI_A" domstate "$DOM2" 2>/dev/null)" = running ] &&
		dom_facts "$DOM2" "$W/st2.facts" && [ "$(fact "$W/st2.facts" phase)" = hello ]
}
wait_for "$DOM2 running on hv-a in its hello phase" 600 on_a_in_hello ||
	{ cat "$W/st2.facts" >&2; show_failure "$DOM2"; exit 1; }
[ "$(fact "$W/st2.facts" hypervisor)" = hv-a ] || tuapt_die "status: $DOM2's hypervisor is '$(fact "$W/st2.facts" hypervisor)'"
nothing_of hv-b "$URI_B" "$DOM2"
ctl list >"$W/list.out"
sed 's/^/  list: /' "$W/list.out" >&2
head -n 1 "$W/list.out" | grep -E '^DOMAIN +HYPERVISOR +VM +JOB +PHASE +AGENT' >/dev/null || tuapt_die "tuap-ctl list's header: $(head -n 1 "$W/list.out")"
read -r _ h vm _ <<<"$(awk -v d="$DOM" '$1 == d' "$W/list.out")"
[ "$h $vm" = "hv-b running" ] || tuapt_die "tuap-ctl list: $DOM is not 'hv-b running'"
read -r _ h vm _ <<<"$(awk -v d="$DOM2" '$1 == d' "$W/list.out")"
[ "$h $vm" = "hv-a running" ] || tuapt_die "tuap-ctl list: $DOM2 is not 'hv-a running'"
dom_facts "$DOM" "$W/l1.facts" list
dom_facts "$DOM2" "$W/l2.facts" list
[ "$(fact "$W/l1.facts" hypervisor) $(fact "$W/l2.facts" hypervisor)" = "hv-b hv-a" ] ||
	tuapt_die "list --json: hypervisors '$(fact "$W/l1.facts" hypervisor)' and '$(fact "$W/l2.facts" hypervisor)'"
ctl destroy --purge "$DOM2" >"$W/logs/destroy2.out" 2>&1 ||
	{ cat "$W/logs/destroy2.out" >&2; tuapt_die "destroy --purge $DOM2 failed"; }
nothing_of hv-a "$URI_A" "$DOM2"

# --- hv-b's libvirtd killed with the example running: the guest goes on
phase hv-b-restart-live
QEMU_PID=$(cat "$DIR_B/run/qemu/$DOM.pid")
kill -0 "$QEMU_PID" || tuapt_die "no qemu $QEMU_PID for $DOM"
libvirtd_kill "$DIR_B"
sleep 2
kill -0 "$QEMU_PID" 2>/dev/null || tuapt_die "$DOM's qemu died with hv-b's libvirtd"
http_get || tuapt_die "the site stopped answering when hv-b's libvirtd died"
wait_for "tuapd seeing hv-b unreachable" 60 hv_state_is hv-b unreachable
read -r _ h vm _ <<<"$(list_row "$DOM")"
[ "$h $vm" = "hv-b unreachable" ] || tuapt_die "tuap-ctl list with hv-b down: $DOM is '$(list_row "$DOM")'"
libvirtd_restart "$DIR_B"
[ "$(virsh_ "$URI_B" domstate "$DOM")" = running ] || tuapt_die "hv-b's libvirtd lost $DOM over its restart"
[ "$(cat "$DIR_B/run/qemu/$DOM.pid")" = "$QEMU_PID" ] || tuapt_die "$DOM has another qemu after hv-b's restart"
wait_for "tuapd seeing hv-b up again" 120 hv_state_is hv-b up
dom_running() { dom_facts "$DOM" "$W/st.facts" && [ "$(fact "$W/st.facts" vm)" = running ]; }
wait_for "status: $DOM running again" 60 dom_running || tuapt_die "status: $DOM is '$(fact "$W/st.facts" vm)' after hv-b came back"

# --- tuapd restarted: the example found on hv-b by its metadata
phase tuapd-restart
stop_pid "$TUAPD_PID"
tuapd_log_clean "$TUAPD_LOG"
grep -q "stopping (signal 15)" "$TUAPD_LOG" || tuapt_die "tuapd did not stop cleanly on SIGTERM"
start_tuapd "$W/logs/tuapd.restarted.log"
read -r _ h vm _ <<<"$(list_row "$DOM")"
[ "$h $vm" = "hv-b running" ] || tuapt_die "after tuapd's restart, tuap-ctl list: $DOM is '$(list_row "$DOM")'"

# --- destroy --purge
phase destroy
ctl destroy --purge "$DOM" >"$W/logs/destroy.out" 2>&1 || { cat "$W/logs/destroy.out" >&2; tuapt_die "tuap-ctl destroy --purge failed"; }
sed 's/^/  destroy: /' "$W/logs/destroy.out" >&2
nothing_of hv-b "$URI_B" "$DOM"
nothing_of hv-a "$URI_A" "$DOM"
for pool in $(virsh_ "$URI_B" pool-list --all --name) $(virsh_ "$URI_A" pool-list --all --name); do
	[ "$pool" = tuap-images ] || tuapt_die "pool $pool left behind"
done
virsh_ "$URI_B" vol-list tuap-images | grep "$DOM" >/dev/null && tuapt_die "a volume of $DOM in hv-b's tuap-images"
[ -e "$W/vms-b/$DOM" ] && tuapt_die "pool directory $W/vms-b/$DOM left behind"
[ -e "$W/state/keys/$DOM.pub" ] && tuapt_die "agent key $W/state/keys/$DOM.pub left behind"
[ -e "$W/state/domains/$DOM" ] && tuapt_die "journal $W/state/domains/$DOM left behind"
ctl status "$DOM" >/dev/null 2>&1 && tuapt_die "tuapd still knows $DOM after the purge"
virsh_ "$URI_A" dominfo "$FOREIGN" | grep -E '^State: +shut off' >/dev/null || tuapt_die "the foreign domain on hv-a was touched"

kill -0 "$TUAPD_PID" 2>/dev/null || tuapt_die "tuapd died"
stop_pid "$TUAPD_PID"
tuapd_log_clean "$TUAPD_LOG"
grep -q "stopping (signal 15)" "$TUAPD_LOG" || tuapt_die "tuapd did not stop cleanly on SIGTERM"
host_firewall_snapshot "$W/fw.after"
diff -u "$W/fw.before" "$W/fw.after" >&2 || tuapt_die "the host namespace's firewall/ip_forward changed"
phase

echo "tuapd's phase times for $DOM on hv-b (killed at $FAILED_PHASE, then resumed):" >&2
cat "$W/logs/provision.out" "$W/logs/provision-resume.out" |
	sed -n 's/^\[ *\([0-9.]*s\)\] \([a-z]*\): done in \([0-9.]*s\).*/  \2 \3 (at \1)/p' >&2
echo "PASS: two hypervisors: placement (memory, pin, labels), $DOM provisioned on hv-b through a libvirtd crash in $FAILED_PHASE and resumed, $DOM2 on hv-a, list/status across both, both purged"
