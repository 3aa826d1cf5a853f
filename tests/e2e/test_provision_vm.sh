#!/bin/bash
# test_provision_vm.sh — the end-to-end test of tuap: `tuap-ctl provision` of the example site
# makes a real VM through tuapd and libvirt, whose agent creates the users, installs nginx,
# sets the mail alias, unpacks the site and runs its Makefile; then `tuap-ctl destroy --purge`
# takes it all away again.
#
# Set-up: the guest image with tuap-agent baked in (deploy/guest/build-image --agent), a
# network namespace with a private libvirtd (tests/lib/libvirtd.sh: NAT network tuap-mgmt on
# 198.51.100.1/24, bridge br-pub on 192.0.2.1/24), a local apt repository with nginx served on
# 192.0.2.1:8080 (tuapd.conf apt_source: the seed installs it before the agent starts), and
# tuapd inside the namespace (virt_type qemu: TCG; its agent socket on 198.51.100.1).
#
# Asserts:
#   - provision exits 0 and every phase from plan to make is reported done, users included;
#   - from inside the namespace, GET http://192.0.2.10/ returns the example's index.html
#     byte for byte (nginx from the local repository, configured by the site's Makefile, on the
#     static address network-config gave the public NIC);
#   - `tuap-ctl status` says the VM runs, the job is done, the agent answered and the users step
#     (like every step) is done; `tuap-ctl log` holds make's output; the journal has each phase;
#   - `virsh dumpxml` carries tuap's metadata: version, provision-id = the job, instance-id,
#     agent-public-key = the key tuapd allowed (STATE_DIR/keys/example.test.pub), image;
#   - tuapd's secrets are private on the hypervisor (secrets_private: its CURVE and SSH keys,
#     the seed ISOs with the agent's key, nothing else readable by others);
#   - `tuap-ctl console-log` shows the guest's console; `tuap-ctl snapshot` takes a snapshot
#     (with memory) and `tuap-ctl restore --latest` goes back to it, the site still served;
#   - `tuap-ctl provision --rebuild` (TUAPT_E2E_REBUILD=1, the default; deploy/demo skips it)
#     says it snapshotted the old VM first, makes a new one with a new agent key, provision-id
#     and instance-id that serves the site again, and the old agent (started on the host with
#     the config from the old seed ISO) is refused by tuapd; while the new guest boots, tuapd
#     is killed with SIGKILL: tuap-ctl says it lost tuapd, the restarted tuapd resumes the job
#     at its journaled phase with the same VM (same UUID), and `tuap-ctl watch` follows it to
#     the end;
#   - `tuap-ctl destroy --purge` leaves no domain, no volume of the domain, no pool or pool
#     directory, no key, no journal (only the shared base image in tuap-images stays);
#   - tuapd stops cleanly on SIGTERM, without sanitizer reports (Sanitize builds);
#   - the host namespace's firewall and ip_forward are unchanged.
# Every phase is timed (the test's own, and tuapd's per-phase times from the provision).
# Exits 77 (skip) when not root, without netns support, or without a self-contained agent.
# Env: TUAPT_KEEP=1 (leave everything for debugging), TUAP_E2E_PROVISION_DEADLINE (default
# 1500 s), TUAP_E2E_IMAGE_ARGS (extra build-image arguments).
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
	curl ss iptables-save nft python3

vm_need_bins

DOM=example.test
GUEST_PUB=192.0.2.10
REPO_PORT=8080
PROVISION_DEADLINE=${TUAP_E2E_PROVISION_DEADLINE:-1500}

tmpdir_new W
mkdir -p "$W/logs" "$W/sites" "$W/state" "$W/run" "$W/vms"
TUAPT_LOGDIR=$W/logs
host_firewall_snapshot "$W/fw.before"

# --- image
phase image
vm_image "$W"

# --- namespace, libvirtd, networks
phase netns+libvirtd
netns_new NS vm
libvirtd_start_default "$NS" URI
libvirt_domain_cleanup "$URI" "$DOM"

# --- apt repository for the guest
phase apt-repo
aptrepo_build "$W/repo" "$IMG/packages.txt" nginx
aptrepo_serve "$NS" "$TUAPT_PUB_ADDR" "$REPO_PORT" "$W/repo" APT_LINE

# --- the site: a copy of the example, packed
phase site
cp -r "$src/examples/$DOM" "$W/sites/"
SITE=$W/sites/$DOM
[ "$IMAGE_NAME" = "$(sed -n 's/^image=//p' "$SITE/provision.conf")" ] ||
	tuapt_die "the example's image is not the catalog's '$IMAGE_NAME'"
"$CTL" pack "$SITE" >"$W/logs/pack.out" 2>&1 || { cat "$W/logs/pack.out" >&2; tuapt_die "tuap-ctl pack failed"; }
"$CTL" validate "$SITE" >"$W/logs/validate.out" 2>&1 ||
	{ cat "$W/logs/validate.out" >&2; tuapt_die "tuap-ctl validate failed"; }

# --- tuapd in the namespace
phase tuapd
vm_tuapd_conf "$W" "$URI" "$W/images.conf" "$IMAGE_NAME" "$APT_LINE"
# start_tuapd LOG: tuapd in the namespace, logging to LOG; sets TUAPD_PID and TUAPD_LOG
start_tuapd() { vm_tuapd_start "$NS" "$W/tuapd.conf" "$1"; }
start_tuapd "$W/logs/tuapd.log"

show_failure() {
	echo "--- tuapd's log (last 40 lines):" >&2
	tail -n 40 "$TUAPD_LOG" >&2
	echo "--- the guest's console (last 30 lines):" >&2
	timeout 30 "$CTL" console-log -n 30 "$DOM" >&2 || true
}

# --- provision, followed live
phase provision
rc=0
timeout "$PROVISION_DEADLINE" "$CTL" provision "$SITE" 2>&1 | tee "$W/logs/provision.out" || rc=$?
if [ "$rc" != 0 ]; then
	show_failure
	tuapt_die "tuap-ctl provision exited $rc (124: no end within ${PROVISION_DEADLINE}s)"
fi
for p in plan image disk keys seed define hello users packages mail data make; do
	grep -q "] $p: done in " "$W/logs/provision.out" || tuapt_die "provision did not report phase $p done"
done

# --- what the site serves
phase checks
http_get() { ip netns exec "$NS" curl -sS --max-time 10 "http://$GUEST_PUB/" -o "$W/page.html"; }
wait_for "HTTP GET http://$GUEST_PUB/ inside $NS" 60 http_get || { show_failure; exit 1; }
cmp -s "$W/page.html" "$SITE/site/public/index.html" ||
	tuapt_die "http://$GUEST_PUB/ is not the example's index.html: $(head -c 200 "$W/page.html")"
echo "== the site answers (GET http://$GUEST_PUB/ from inside $NS):"
ip netns exec "$NS" curl -sS -i --max-time 10 "http://$GUEST_PUB/" || true

"$CTL" status --json "$DOM" >"$W/status.json"
python3 - "$W/status.json" "$DOM" >"$W/status.facts" <<'EOF'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
st = [e for e in events if e.get("type") == "status"]
assert st, "no status event in %r" % events
d = [x for x in st[0]["domains"] if x["domain"] == sys.argv[2]][0]
for k in ("vm", "job", "phase", "agent_version", "job_id"):
    print(k, d.get(k, "-"))
for name, state in (d.get("steps") or {}).items():
    print("step", name, state)
EOF
fact() { sed -n "s/^$1 //p" "$W/status.facts"; }
[ "$(fact vm)" = running ] || tuapt_die "status: VM is '$(fact vm)', not running"
[ "$(fact job)" = done ] || tuapt_die "status: job is '$(fact job)', not done"
[ "$(fact agent_version)" != - ] || tuapt_die "status: no agent seen"
fact step | grep -qx "users done" || tuapt_die "status: the users step is not done: $(fact step | tr '\n' ',')"
"$CTL" status "$DOM" >"$W/status.out"
grep -q "users done" "$W/status.out" || tuapt_die "tuap-ctl status does not show the users step done"
sed 's/^/  status: /' "$W/status.out" >&2

secrets_private "$W/state" "$W/vms"
"$CTL" log "$DOM" >"$W/setup.log"
grep -q '^make| content: ' "$W/setup.log" || tuapt_die "tuap-ctl log has no output of make's content target"
grep -q '^make| reload: nginx serves example.test' "$W/setup.log" ||
	tuapt_die "tuap-ctl log has no output of make's reload target"
JOURNAL=$W/state/domains/$DOM/journal
for p in plan image disk keys seed define hello users packages mail data make; do
	grep -qP "^phase\t[^\t]*\t$p\tdone" "$JOURNAL" || tuapt_die "the journal has no 'phase $p done'"
done
JOB=$(fact job_id)
grep -qP "^job\t$JOB\t-\tdone" "$JOURNAL" || tuapt_die "the journal does not say job $JOB is done"

virsh_ "$URI" dumpxml "$DOM" >"$W/domain.xml"
meta() { sed -n "s|.*<tuap:$1>\\(.*\\)</tuap:$1>.*|\\1|p" "$W/domain.xml"; }
grep -q '<tuap:domain xmlns:tuap="https://tuap.dev/xmlns/domain/1">' "$W/domain.xml" ||
	tuapt_die "the domain XML has no tuap metadata"
[ "$(meta provision-id)" = "$JOB" ] || tuapt_die "metadata provision-id '$(meta provision-id)' is not the job $JOB"
[ "$(meta instance-id)" = "tuap-$JOB" ] || tuapt_die "metadata instance-id '$(meta instance-id)'"
[ "$(meta image)" = "$IMAGE_NAME" ] || tuapt_die "metadata image '$(meta image)'"
[ -n "$(meta version)" ] || tuapt_die "metadata has no version"
[ "$(meta agent-public-key | sed 's/&gt;/>/g; s/&lt;/</g; s/&amp;/\&/g')" = "$(cat "$W/state/keys/$DOM.pub")" ] ||
	tuapt_die "metadata agent-public-key is not the allowed key $W/state/keys/$DOM.pub"

# after the agent's first hello the seed (with the agent's secret key) is out of the VM, live
# and in its definition (17.6)
seed_ejected() { grep -q "$DOM: seed ejected (1 cdrom)" "$TUAPD_LOG"; }
wait_for "tuapd ejecting the seed" 60 seed_ejected || { tail -n 20 "$TUAPD_LOG" >&2; exit 1; }
for flags in "" --inactive; do
	# shellcheck disable=SC2086 # no flag is no word
	virsh_ "$URI" dumpxml $flags "$DOM" | python3 -c '
import sys, xml.etree.ElementTree as ET
cd = [d for d in ET.parse(sys.stdin).findall("./devices/disk") if d.get("device") == "cdrom"]
# an empty drive has no <source>, or (live) one without a file
bad = [ET.tostring(d).decode() for d in cd
       if d.find("source") is not None and d.find("source").get("file")]
assert cd and not bad, "a cdrom still has its medium: %s" % bad' ||
		tuapt_die "the seed is still in the VM (virsh dumpxml $flags)"
done
"$CTL" console-log -n 5 "$DOM" >"$W/console.out" || tuapt_die "tuap-ctl console-log failed"
[ "$(wc -l <"$W/console.out")" -ge 1 ] || tuapt_die "tuap-ctl console-log printed nothing"

phase snapshot
"$CTL" snapshot "$DOM" e2e >"$W/snapshot.out" 2>&1 || { cat "$W/snapshot.out" >&2; tuapt_die "tuap-ctl snapshot failed"; }
grep -q "snapshot e2e of $DOM taken" "$W/snapshot.out" || tuapt_die "snapshot: $(cat "$W/snapshot.out")"
virsh_ "$URI" snapshot-list --name "$DOM" | grep -qx e2e || tuapt_die "libvirt lists no snapshot e2e"
"$CTL" restore "$DOM" --latest >"$W/restore.out" 2>&1 || { cat "$W/restore.out" >&2; tuapt_die "tuap-ctl restore failed"; }
grep -q "$DOM restored to snapshot e2e" "$W/restore.out" || tuapt_die "restore: $(cat "$W/restore.out")"
wait_for "HTTP GET http://$GUEST_PUB/ after the restore" 60 http_get || { show_failure; exit 1; }
cmp -s "$W/page.html" "$SITE/site/public/index.html" || tuapt_die "after the restore the page differs"

# --- --rebuild: the old VM snapshotted and put aside, a new one with new keys and instance-id,
# the site served again; the old agent's key is refused from then on. (deploy/demo skips it.)
if [ "${TUAPT_E2E_REBUILD:-1}" = 1 ]; then
	phase rebuild
	OLD_PUB=$(cat "$W/state/keys/$DOM.pub")
	# the seed is ejected from the VM after hello; its volume stays in the domain's pool
	OLD_SEED=$(virsh_ "$URI" vol-list "tuap-$DOM" | awk '$1 ~ /^seed-.*\.iso$/ { print $2 }' | tail -n 1)
	[ -f "$OLD_SEED" ] || tuapt_die "the old seed '$OLD_SEED' is not there"
	mkdir -p "$W/old/state" "$W/old/site"
	xorriso -osirrox on -indev "$OLD_SEED" -extract /tuap/agent.conf "$W/old/seed.conf" \
		>/dev/null 2>&1 || tuapt_die "cannot read tuap/agent.conf from $OLD_SEED"
	# the old agent's config with its state in $W (Z85 keys hold sed's special characters)
	python3 - "$W/old/seed.conf" "$W/old/agent.conf" "$W/old/state" <<'EOF'
import os, sys
out = []
for line in open(sys.argv[1]):
    k = line.split("=", 1)[0].strip()
    out.append("state_dir = %s\n" % sys.argv[3] if k == "state_dir" else line)
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, "".join(out).encode())
EOF
	# tuapd is killed (-9, a crash) while the new guest boots, and started again: the job
	# resumes at its journaled phase with the same VM, and the agent's hello completes it.
	"$CTL" provision --rebuild "$SITE" >"$W/logs/rebuild.out" 2>&1 &
	REBUILD_CTL=$!
	defined() { grep -q "] define: done in " "$W/logs/rebuild.out"; }
	wait_for "the rebuild's VM defined and started" 600 defined ||
		{ cat "$W/logs/rebuild.out" >&2; show_failure; exit 1; }
	UUID_BEFORE=$(virsh_ "$URI" domuuid "$DOM")
	kill -KILL "$TUAPD_PID"
	rc=0
	timeout 30 tail --pid="$REBUILD_CTL" -f /dev/null || rc=$?
	[ "$rc" = 0 ] || tuapt_die "tuap-ctl provision --rebuild did not end when tuapd died"
	wait "$REBUILD_CTL" && tuapt_die "tuap-ctl provision --rebuild exited 0 though tuapd died"
	grep -q "lost the connection to tuapd" "$W/logs/rebuild.out" ||
		tuapt_die "tuap-ctl did not say it lost tuapd: $(tail -n 3 "$W/logs/rebuild.out")"
	tuapd_log_clean "$TUAPD_LOG"
	start_tuapd "$W/logs/tuapd.restarted.log"
	rc=0
	timeout "$PROVISION_DEADLINE" "$CTL" watch "$DOM" >"$W/logs/rebuild.watch.out" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		cat "$W/logs/rebuild.out" "$W/logs/rebuild.watch.out" >&2
		show_failure
		tuapt_die "tuap-ctl watch of the resumed rebuild exited $rc"
	fi
	RESUMED=$(grep -m1 -oE "resuming job [^ ]+ at [a-z]+" "$TUAPD_LOG") ||
		tuapt_die "the restarted tuapd resumed no job"
	[[ "$RESUMED" =~ at\ (define|hello)$ ]] || tuapt_die "killed during the boot, but: $RESUMED"
	tuapt_log "tuapd killed after define; the restarted one: $RESUMED; watch followed:"
	grep -E '^\[ *[0-9.]+s\] [a-z]+: ' "$W/logs/rebuild.watch.out" | sed 's/^/  watch: /' >&2
	[ "$(virsh_ "$URI" domuuid "$DOM")" = "$UUID_BEFORE" ] ||
		tuapt_die "the resumed job made another VM (uuid $UUID_BEFORE before the restart)"
	grep -q "snapshot tuap-before-" "$W/logs/rebuild.out" ||
		tuapt_die "--rebuild did not say it took a snapshot first: $(grep plan "$W/logs/rebuild.out")"
	grep -q "] make: done in " "$W/logs/rebuild.watch.out" || tuapt_die "the resumed rebuild did not run make"
	NEW_PUB=$(cat "$W/state/keys/$DOM.pub")
	[ "$NEW_PUB" != "$OLD_PUB" ] || tuapt_die "--rebuild kept the old agent key"
	virsh_ "$URI" dumpxml "$DOM" >"$W/domain.xml"
	NEW_JOB=$(meta provision-id)
	[ "$NEW_JOB" != "$JOB" ] || tuapt_die "--rebuild kept the provision-id $JOB"
	[ "$(meta instance-id)" = "tuap-$NEW_JOB" ] || tuapt_die "after --rebuild, instance-id '$(meta instance-id)'"
	wait_for "HTTP GET http://$GUEST_PUB/ after the rebuild" 60 http_get || { show_failure; exit 1; }
	cmp -s "$W/page.html" "$SITE/site/public/index.html" || tuapt_die "after the rebuild the page differs"
	# the old agent, started again with its seed's config, is refused
	TUAPT_BG_LOG=$W/logs/old-agent.log netns_bg "$NS" OLD_AGENT "$AGENT" --config "$W/old/agent.conf" \
		--site-root "$W/old/site"
	old_refused() { grep -qF "refused $OLD_PUB from" "$TUAPD_LOG"; }
	wait_for "tuapd refusing the old agent key" 30 old_refused ||
		{ tail -n 10 "$TUAPD_LOG" "$W/logs/old-agent.log" >&2; exit 1; }
	stop_pid "$OLD_AGENT"
	[ -z "$(ls -A "$W/old/site")" ] || tuapt_die "the old agent got a site"
fi

# --- destroy --purge
phase destroy
"$CTL" destroy --purge "$DOM" >"$W/destroy.out" 2>&1 || { cat "$W/destroy.out" >&2; tuapt_die "tuap-ctl destroy --purge failed"; }
sed 's/^/  destroy: /' "$W/destroy.out" >&2
virsh_ "$URI" list --all --name | grep -qx "$DOM" && tuapt_die "domain $DOM still defined"
virsh_ "$URI" pool-info "tuap-$DOM" >/dev/null 2>&1 && tuapt_die "pool tuap-$DOM still defined"
for pool in $(virsh_ "$URI" pool-list --all --name); do
	[ "$pool" = tuap-images ] || tuapt_die "pool $pool left behind"
done
virsh_ "$URI" vol-list tuap-images | grep -q "$DOM" && tuapt_die "a volume of $DOM in tuap-images"
[ -e "$W/vms/$DOM" ] && tuapt_die "pool directory $W/vms/$DOM left behind"
[ -e "$W/state/keys/$DOM.pub" ] && tuapt_die "agent key $W/state/keys/$DOM.pub left behind"
[ -e "$W/state/domains/$DOM" ] && tuapt_die "journal $W/state/domains/$DOM left behind"
"$CTL" status "$DOM" >/dev/null 2>&1 && tuapt_die "tuapd still knows $DOM after the purge"
ip netns exec "$NS" curl -s --max-time 3 "http://$GUEST_PUB/" >/dev/null 2>&1 && tuapt_die "$GUEST_PUB still answers"

kill -0 "$TUAPD_PID" 2>/dev/null || tuapt_die "tuapd died"
stop_pid "$TUAPD_PID" # a clean exit, so that a sanitizer build reports what it found
tuapd_log_clean "$TUAPD_LOG"
grep -q "stopping (signal 15)" "$TUAPD_LOG" || tuapt_die "tuapd did not stop cleanly on SIGTERM"
host_firewall_snapshot "$W/fw.after"
diff -u "$W/fw.before" "$W/fw.after" >&2 || tuapt_die "the host namespace's firewall/ip_forward changed"
phase

echo "tuapd's phase times (from the provision's output):" >&2
sed -n 's/^\[ *\([0-9.]*s\)\] \([a-z]*\): done in \([0-9.]*s\).*/  \2 \3 (at \1)/p' "$W/logs/provision.out" >&2
rebuilt=
[ "${TUAPT_E2E_REBUILD:-1}" = 1 ] && rebuilt=" rebuilt (old agent key refused),"
echo "PASS: $DOM provisioned as a VM from $IMG, served http://$GUEST_PUB/,$rebuilt destroyed and purged"
