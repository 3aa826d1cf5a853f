#!/bin/bash
# test_package.sh [--quick] — issue 11: the Debian packages (deploy/package, debian/) installed
# on a Debian 12 system that runs systemd as PID 1: a throwaway root (chroot.sh's cached
# debootstrap root + systemd, dbus, as an overlay) booted with `systemd-nspawn --boot` inside
# one of the test's network namespaces (only lo: every connection stays on the container's
# loopback). The packages' dependencies come from a local file: apt repository (aptrepo.sh,
# .debs fetched on the host), so apt resolves the .debs' own Depends.
#   1. the previous release (OLD) installed with apt: the tree of the last commit before
#      debian/changelog's top entry was added, from git, built with its own deploy/package
#      (TUAP_PKG_OLD_DEBS=DIR takes OLD's .debs from DIR; without git history, e.g. a shallow
#      clone, this tree built with a lower version stands in, and the PASS line says so): tuapd.service started by the postinst, running as user tuap
#      (groups tuap, libvirt, kvm); /var/lib/tuap, /vms, /run/tuap and the control socket
#      with the owners and modes tuapd and its docs expect; every path the installed
#      /etc/tuap/tuapd.conf names (its values are the built-in defaults) exists;
#   2. `tuap-ctl status` works for a member of group tuap and is refused for a user outside it;
#   3. tuapd listens on 127.0.0.1 (an edit of the conffile), a site is enrolled, the packaged
#      tuap-agent runs as a transient unit in the same container, and
#      `tuap-ctl provision --existing` of a small site completes (make ran once);
#   4. upgrade to the new build (NEW: this tree): tuapd restarted with the new binary, the edited
#      conffile kept, the earlier job still `done` with its id in `tuap-ctl status` and its make
#      output in `tuap-ctl log`; the paths again;
#   (the new packages pass lintian: deploy/package --lintian)
#   5. purge: /etc/tuap and /var/lib/tuap gone; /vms, which still holds the site's data, and so
#      the user tuap, left in place; nothing else of the system touched (libvirt's groups); then
#      with /vms emptied, a reinstall and a purge of both packages remove /vms and the user too.
# --quick: NEW only (no upgrade, no purge). TUAP_PKG_DEBS=DIR uses the .debs in DIR as NEW instead
# of building them; TUAP_PKG_OLD_DEBS=DIR the ones in DIR as OLD.
# Needs root, netns, systemd-nspawn (systemd-container), debootstrap, dpkg-buildpackage and
# debhelper; skips (77) without them. ~3 min warm (two package builds ~40 s each), ~5 cold.
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/chroot.sh"
. "$src/tests/lib/aptrepo.sh"

quick=0
[ "${1:-}" != --quick ] || quick=1

skip_unless_root
skip_unless_netns
skip_unless_cmd systemd-nspawn nsenter debootstrap dpkg-buildpackage dh dpkg-scanpackages python3

TUAPT_BOOT_DEADLINE=${TUAPT_BOOT_DEADLINE:-120}
TUAPT_APT_INSTALL_DEADLINE=${TUAPT_APT_INSTALL_DEADLINE:-600}
TUAPT_CTL_DEADLINE=${TUAPT_CTL_DEADLINE:-60}
DOMAIN=example.test

tmpdir_new W
mkdir -p "$W/logs" "$W/new" "$W/old"
TUAPT_LOGDIR=$W/logs

# --- the packages -------------------------------------------------------------------------
phase build
if [ -n "${TUAP_PKG_DEBS:-}" ]; then
	cp "$TUAP_PKG_DEBS"/tuap_*_amd64.deb "$TUAP_PKG_DEBS"/tuap-agent_*_amd64.deb "$W/new/"
else
	"$src/deploy/package" --lintian "$W/new" >"$W/logs/package-new.log" 2>&1 ||
		{ tail -n 30 "$W/logs/package-new.log" >&2; tuapt_die "deploy/package failed"; }
fi
deb_version() { dpkg-deb -f "$1" Version; }
# previous_release: prints the commit before the one that added debian/changelog's top entry
# (the tree of the last release), or fails when git cannot tell.
previous_release() {
	local top intro
	git -C "$src" rev-parse --git-dir >/dev/null 2>&1 || return 1
	[ "$(git -C "$src" rev-parse --is-shallow-repository)" = false ] || return 1
	top=$(sed -n '1s/^tuap (\([^)]*\)).*/\1/p' "$src/debian/changelog")
	[ -n "$top" ] || return 1
	intro=$(git -C "$src" log -1 --format=%H -F -S "tuap ($top)" -- debian/changelog) || return 1
	[ -n "$intro" ] && git -C "$src" rev-parse -q --verify "${intro}^" 2>/dev/null
}
NEW_V=$(deb_version "$(ls "$W"/new/tuap_*_amd64.deb | head -n 1)")
if [ "$quick" = 0 ]; then
	phase build-old
	OLD_FROM=
	if [ -n "${TUAP_PKG_OLD_DEBS:-}" ]; then
		cp "$TUAP_PKG_OLD_DEBS"/tuap_*_amd64.deb "$TUAP_PKG_OLD_DEBS"/tuap-agent_*_amd64.deb "$W/old/"
		OLD_FROM="the .debs in $TUAP_PKG_OLD_DEBS"
	elif OLD_REV=$(previous_release); then
		mkdir "$W/oldtree"
		git -C "$src" archive "$OLD_REV" | tar -x -C "$W/oldtree"
		"$W/oldtree/deploy/package" "$W/old" >"$W/logs/package-old.log" 2>&1 ||
			{ tail -n 30 "$W/logs/package-old.log" >&2; tuapt_die "deploy/package of $OLD_REV failed"; }
		OLD_FROM="commit $(git -C "$src" rev-parse --short "$OLD_REV"), the previous release"
	else
		tuapt_log "no previous release in git history (not a git checkout, or shallow): OLD is this tree with a lower version"
		"$src/deploy/package" --version "${NEW_V}~prev1" "$W/old" >"$W/logs/package-old.log" 2>&1 ||
			{ tail -n 30 "$W/logs/package-old.log" >&2; tuapt_die "deploy/package --version failed"; }
		OLD_FROM="this tree with a lower version (no git history)"
	fi
	OLD_V=$(deb_version "$(ls "$W"/old/tuap_*_amd64.deb | head -n 1)")
	dpkg --compare-versions "$OLD_V" lt "$NEW_V" || tuapt_die "old version $OLD_V is not below $NEW_V"
fi
tuapt_log "new: tuap $NEW_V${OLD_V:+; old: tuap $OLD_V}"

# --- the system: a cached Debian root with systemd, and the packages' dependencies ---------
phase root
chroot_root_cached BASE "systemd,systemd-sysv,dbus"
chroot_new R "systemd,systemd-sysv,dbus"

phase apt-repo
# the Depends of both packages (first of each alternative, no versions), minus themselves
deps=$(for f in "$W"/new/*.deb; do dpkg-deb -f "$f" Depends; done | tr ',' '\n' |
	sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | grep -v -x -e '' -e tuap -e tuap-agent | sort -u)
# shellcheck disable=SC2086 # one word per package
aptrepo_build "$W/repo" "$(dirname "$BASE")/packages.txt" $deps >"$W/logs/aptrepo.log" 2>&1 ||
	{ tail -n 20 "$W/logs/aptrepo.log" >&2; tuapt_die "aptrepo_build failed"; }
mkdir -p "$R/srv/tuap-repo" "$R/srv/tuap-new" "$R/srv/tuap-old"
echo "deb [trusted=yes] file:/srv/tuap-repo ./" >"$R/etc/apt/sources.list.d/tuap-test.list"
# nothing of the image's own that would run apt or fail for want of a network or host keys
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer ssh.service \
	systemd-networkd-wait-online.service; do
	ln -sf /dev/null "$R/etc/systemd/system/$u"
done

# --- boot -----------------------------------------------------------------------------------
phase boot
netns_new NS pkg
MACHINE=tuapt-pkg-$$
# systemd-nspawn runs in the host's network namespace but puts the container into NS
# (--network-namespace-path; not under `ip netns exec`, whose fresh /sys has no cgroup mounts).
# It refuses to clean /run/systemd/nspawn/propagate/ unless that is on tmpfs (here /run is not):
# a tmpfs in a private mount namespace (unshare -m). --register=no and --keep-unit: this host
# has no systemd (machined, a bus) to register with.
CONSOLE=$W/logs/console.log
# shellcheck disable=SC2016 # expanded by the inner sh
unshare -m --propagation private sh -c 'mkdir -p /run/systemd/nspawn &&
	mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn && exec "$@"' sh \
	systemd-nspawn --quiet --register=no --keep-unit --boot -M "$MACHINE" -D "$R" \
	--network-namespace-path="/run/netns/$NS" \
	--bind-ro="$W/repo:/srv/tuap-repo" --bind-ro="$W/new:/srv/tuap-new" --bind-ro="$W/old:/srv/tuap-old" \
	>"$CONSOLE" 2>&1 </dev/null &
NSPAWN_PID=$!
pid_record "$NSPAWN_PID"

leader() { LEADER=$(pgrep -P "$NSPAWN_PID" -x systemd | head -n 1) && [ -n "$LEADER" ]; }
wait_for "the container's systemd" 30 leader || { tail -n 30 "$CONSOLE" >&2; exit 1; }
netns_check_pid "$NS" "$LEADER"
# cin: a command inside the container (all its namespaces, a clean environment), bounded
cin() {
	timeout "${IN_DEADLINE:-120}" nsenter -t "$LEADER" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
# as USER CMD...: a command as USER inside the container
as() {
	local u=$1
	shift
	cin runuser -u "$u" -- "$@"
}
# a clean shutdown first (poweroff), so that nothing is left for the harness's KILL
poweroff_container() {
	kill -0 "$NSPAWN_PID" 2>/dev/null || return 0
	IN_DEADLINE=10 cin systemctl --no-block poweroff >/dev/null 2>&1 || true
	for _ in $(seq 1 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || return 0; sleep 0.5; done
}
cleanup_push poweroff_container
booted() {
	local s
	s=$(IN_DEADLINE=10 cin systemctl is-system-running 2>/dev/null) || true
	[ "$s" = running ] || [ "$s" = degraded ]
}
wait_for "the container to boot (systemctl is-system-running)" "$TUAPT_BOOT_DEADLINE" booted ||
	{ tail -n 30 "$CONSOLE" >&2; exit 1; }
[ "$(cin cat /proc/1/comm)" = systemd ] || tuapt_die "PID 1 in the container is not systemd"
[ "$(cin ip -o link show | grep -c -v ': lo:')" = 0 ] || tuapt_die "the container has a link besides lo"

# --- helpers for the checks ---------------------------------------------------------------
# install DIR: apt installs tuap and tuap-agent from /srv/tuap-DIR (dependencies from the repo)
install_debs() {
	local d=/srv/tuap-$1
	IN_DEADLINE=$TUAPT_APT_INSTALL_DEADLINE cin apt-get -q update >>"$W/logs/apt.log" 2>&1
	# shellcheck disable=SC2046 # the two paths
	IN_DEADLINE=$TUAPT_APT_INSTALL_DEADLINE cin apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		$(cd "$W/$1" && printf "$d/%s " tuap_*_amd64.deb tuap-agent_*_amd64.deb) \
		>>"$W/logs/apt.log" 2>&1 || { tail -n 30 "$W/logs/apt.log" >&2; tuapt_die "apt-get install of $1 failed"; }
}

tuapd_pid() { cin systemctl show -p MainPID --value tuapd.service; }
tuapd_execd() {
	local pid
	pid=$(IN_DEADLINE=10 cin systemctl show -p MainPID --value tuapd.service 2>/dev/null) || return 1
	[ "$pid" -gt 0 ] 2>/dev/null && [ "$(IN_DEADLINE=10 cin readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/sbin/tuapd ]
}
tuapd_active() { [ "$(IN_DEADLINE=10 cin systemctl is-active tuapd.service 2>/dev/null)" = active ]; }
op_status_ok() { as op timeout "$TUAPT_CTL_DEADLINE" tuap-ctl status >/dev/null 2>&1; }
# owner, group and mode of PATH in the container
stat_in() { cin stat -c '%U:%G %a' "$1"; }
want_stat() {
	local got
	got=$(stat_in "$1") || tuapt_die "$1 does not exist"
	[ "$got" = "$2" ] || tuapt_die "$1 is $got, expected $2"
}

check_service() {
	wait_for "tuapd.service active" 30 tuapd_active ||
		{ cin systemctl status --no-pager tuapd.service >&2 || true; tuapt_die "tuapd.service is not active"; }
	local pid user
	# Type=simple is "started" as soon as systemd forked: until the exec the process is
	# systemd's, as root
	wait_for "tuapd's main process running /usr/sbin/tuapd" 20 tuapd_execd ||
		tuapt_die "tuapd.service's main process $(tuapd_pid) is not /usr/sbin/tuapd"
	pid=$(tuapd_pid)
	user=$(cin ps -o user= -p "$pid" | tr -d ' ')
	[ "$user" = tuap ] || tuapt_die "tuapd runs as '$user', not tuap"
	for g in libvirt kvm; do
		cin id -nG tuap | tr ' ' '\n' | grep -qx "$g" || tuapt_die "user tuap is not in group $g"
		gid=$(cin getent group "$g" | cut -d: -f3)
		cin grep '^Groups:' "/proc/$pid/status" | tr -s ' \t' '\n' | grep -qx "$gid" ||
			tuapt_die "tuapd's process is not in group $g ($gid)"
	done
	[ "$(cin getent passwd tuap | cut -d: -f6,7)" = /var/lib/tuap:/usr/sbin/nologin ] ||
		tuapt_die "user tuap: $(cin getent passwd tuap)"
}

# every path the installed tuapd.conf names, set or commented out (its values are the
# built-in defaults: tests/unit/test_settings.c), must exist in the installed system
check_paths() {
	local key path n=0
	wait_for "tuapd's control socket" 20 cin test -S /run/tuap/ctl.sock || tuapt_die "no /run/tuap/ctl.sock"
	want_stat /var/lib/tuap "tuap:tuap 750"
	want_stat /var/lib/tuap/images "tuap:tuap 750"
	want_stat /vms "tuap:kvm 2750"
	want_stat /run/tuap "tuap:tuap 750"
	want_stat /run/tuap/ctl.sock "tuap:tuap 660"
	want_stat /var/lib/tuap/keys "tuap:tuap 700"
	[ "$(cin readlink -f /usr/lib/tuap/tuap-agent)" = /usr/sbin/tuap-agent ] ||
		tuapt_die "/usr/lib/tuap/tuap-agent is not the packaged agent"
	cin cat /etc/tuap/tuapd.conf >"$W/tuapd.conf.installed"
	while read -r key path; do
		cin test -e "$path" || tuapt_die "tuapd.conf's $key $path does not exist in the installed system"
		n=$((n + 1))
	done < <(sed -n 's|^[#[:space:]]*\([a-z_]*\)[[:space:]]*=[[:space:]]*"\(/[^"]*\)".*|\1 \2|p' "$W/tuapd.conf.installed")
	# pool_root state_dir run_dir image_catalog image_dir agent_binary seed_dir ssh.client ssh.dir
	[ "$n" -ge 9 ] || tuapt_die "only $n paths found cin tuapd.conf"
	for f in install tuap-agent.service; do
		cin test -f "/usr/share/tuap/seed/$f" || tuapt_die "seed_dir lacks $f"
	done
	cin tuapd --check -c /etc/tuap/tuapd.conf >/dev/null || tuapt_die "tuapd --check refuses the installed tuapd.conf"
	tuapt_log "the $n paths tuapd.conf names exist"
}

check_access() {
	wait_for "tuap-ctl status as a member of group tuap" 20 op_status_ok ||
		tuapt_die "tuap-ctl status fails for op (group tuap): $(as op tuap-ctl status 2>&1 | tail -n 3)"
	local rc=0
	as outsider timeout "$TUAPT_CTL_DEADLINE" tuap-ctl status >"$W/outsider.out" 2>&1 || rc=$?
	[ "$rc" = 3 ] || tuapt_die "tuap-ctl status as a user outside group tuap exited $rc (expected 3): $(cat "$W/outsider.out")"
	grep -qi "permission denied" "$W/outsider.out" ||
		tuapt_die "the refusal does not say why: $(cat "$W/outsider.out")"
}

# --- 1. install -----------------------------------------------------------------------------
FIRST=new
[ "$quick" = 1 ] || FIRST=old
phase "install-$FIRST"
install_debs "$FIRST"
[ "$(cin dpkg-query -W -f '${Version}' tuap)" = "$([ "$FIRST" = new ] && echo "$NEW_V" || echo "$OLD_V")" ] ||
	tuapt_die "tuap's installed version is $(cin dpkg-query -W -f '${Version}' tuap)"
cin dpkg-query -W -f '${Conffiles}\n' tuap | awk 'NF {print $1}' | sort >"$W/conffiles"
[ "$(tr '\n' ' ' <"$W/conffiles")" = "/etc/tuap/images.conf /etc/tuap/tuapd.conf " ] ||
	tuapt_die "tuap's conffiles: $(cat "$W/conffiles")"
[ "$(cin systemctl is-enabled tuapd.service)" = enabled ] || tuapt_die "tuapd.service is not enabled"
check_service
phase "paths-$FIRST"
check_paths

phase access
cin adduser --quiet --disabled-password --gecos "" op >/dev/null
cin adduser --quiet op tuap >/dev/null
cin adduser --quiet --disabled-password --gecos "" outsider >/dev/null
check_access

# --- 2. a provision onto this host (tuapd and the agent on its loopback) -------------------
phase provision
cin sed -i 's|^agent_listen = .*|agent_listen = "tcp://127.0.0.1:7807";\nagent_endpoint = "tcp://127.0.0.1:7807";\npublic_endpoint = "tcp://127.0.0.1:7807";|' \
	/etc/tuap/tuapd.conf
cin tuapd --check -c /etc/tuap/tuapd.conf >/dev/null || tuapt_die "tuapd --check refuses the edited tuapd.conf"
cin systemctl restart tuapd.service
check_service
wait_for "tuap-ctl status after the restart" 20 op_status_ok
as op tuap-ctl enroll "$DOMAIN" -o /home/op/agent.conf >/dev/null
cin install -D -m 0600 /home/op/agent.conf /etc/tuap-agent/agent.conf
cin systemd-run --quiet --unit=tuap-agent-test -p Restart=always \
	/usr/sbin/tuap-agent --config /etc/tuap-agent/agent.conf
hello() { IN_DEADLINE=10 cin journalctl -u tuapd.service --no-pager 2>/dev/null | grep -q "$DOMAIN: hello from agent"; }
wait_for "the agent's hello cin tuapd's journal" 30 hello ||
	{ cin journalctl -u tuapd.service -u tuap-agent-test.service --no-pager | tail -n 20 >&2; exit 1; }
site=/home/op/sites/$DOMAIN
cin install -d -o op -g op /home/op/sites "$site" "$site/site"
cat >"$W/provision.conf" <<'EOF'
# test_package.sh: a site on an existing host (the container itself)
ips=192.0.2.10/24
gateway=192.0.2.1
resolvers=192.0.2.53
contact_email=webmaster@example.test
EOF
printf 'all:\n\t@echo "content: made by $(USER) in $$(pwd)"\n\ttouch /var/tmp/tuap-package-made\n' >"$W/Makefile"
cin install -o op -g op -m 0644 /dev/stdin "$site/provision.conf" <"$W/provision.conf"
cin install -o op -g op -m 0644 /dev/stdin "$site/site/Makefile" <"$W/Makefile"
as op tuap-ctl pack "$site" >/dev/null
rc=0
IN_DEADLINE=300 as op tuap-ctl provision --existing --json "$site" >"$W/events.jsonl" 2>"$W/logs/provision.err" || rc=$?
if [ "$rc" != 0 ]; then
	tail -n 20 "$W/events.jsonl" "$W/logs/provision.err" >&2
	cin journalctl -u tuapd.service -u tuap-agent-test.service --no-pager | tail -n 30 >&2
	tuapt_die "tuap-ctl provision --existing exited $rc"
fi
JOB=$(python3 -c '
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
jobs = {e["job"] for e in ev if "job" in e}
assert len(jobs) == 1, jobs
assert ev[-1].get("final") and ev[-1].get("exit_code") == 0, ev[-1]
print(jobs.pop())' "$W/events.jsonl") || tuapt_die "the --json stream: $(tail -n 3 "$W/events.jsonl")"
cin test -f /var/tmp/tuap-package-made || tuapt_die "make did not run"
job_done() {
	as op tuap-ctl status --json "$DOMAIN" >"$W/status.json" || return 1
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["domains"][0]
assert d["domain"] == sys.argv[2] and d["job"] == "done" and d.get("job_id") == sys.argv[3], d
' "$W/status.json" "$DOMAIN" "$JOB"
}
job_done || tuapt_die "status after the provision: $(cat "$W/status.json")"
as op tuap-ctl log "$DOMAIN" >"$W/setup.log"
[ "$(grep -c '^make| content: made by' "$W/setup.log")" = 1 ] || { cat "$W/setup.log" >&2; tuapt_die "make's output is not in tuap-ctl log once"; }
tuapt_log "job $JOB done"

if [ "$quick" = 1 ]; then
	phase
	echo "PASS (quick): tuap $NEW_V installed on a booted Debian 12: tuapd as tuap, paths, access by group, provision --existing"
	exit 0
fi

# --- 3. upgrade -----------------------------------------------------------------------------
phase upgrade
OLD_PID=$(tuapd_pid)
cin sha256sum /etc/tuap/tuapd.conf >"$W/conf.sum"
install_debs new
[ "$(cin dpkg-query -W -f '${Version}' tuap)" = "$NEW_V" ] || tuapt_die "tuap was not upgraded to $NEW_V"
[ "$(cin dpkg-query -W -f '${Version}' tuap-agent)" = "$NEW_V" ] || tuapt_die "tuap-agent was not upgraded to $NEW_V"
check_service
[ "$(tuapd_pid)" != "$OLD_PID" ] || tuapt_die "tuapd was not restarted by the upgrade (PID $OLD_PID)"
cin sha256sum -c --quiet /dev/stdin <"$W/conf.sum" || tuapt_die "the upgrade changed the edited /etc/tuap/tuapd.conf"
cin test ! -e /etc/tuap/tuapd.conf.dpkg-new || tuapt_die "a tuapd.conf.dpkg-new appeared"
wait_for "tuap-ctl status after the upgrade" 20 op_status_ok
job_done || tuapt_die "the job did not survive the upgrade: $(cat "$W/status.json")"
as op tuap-ctl log "$DOMAIN" >"$W/setup2.log"
cmp -s "$W/setup.log" "$W/setup2.log" || { diff "$W/setup.log" "$W/setup2.log" >&2; tuapt_die "tuap-ctl log changed across the upgrade"; }
phase paths-new
check_paths
check_access

# --- 4. purge -------------------------------------------------------------------------------
phase purge
cin systemctl stop tuap-agent-test.service
libvirt_groups=$(cin getent group libvirt kvm | cut -d: -f1,3 | tr '\n' ' ')
IN_DEADLINE=120 cin apt-get purge -y -q tuap >>"$W/logs/apt.log" 2>&1 || { tail -n 20 "$W/logs/apt.log" >&2; tuapt_die "apt-get purge tuap failed"; }
cin test ! -e /var/lib/tuap || tuapt_die "/var/lib/tuap is still there after the purge"
cin test ! -e /etc/tuap || tuapt_die "/etc/tuap is still there after the purge: $(cin ls -la /etc/tuap)"
cin test ! -e /lib/systemd/system/tuapd.service || tuapt_die "the unit is still there"
cin test -d "/vms/$DOMAIN" || tuapt_die "the purge deleted /vms, which held the site's data"
cin test -f /vms/.tuap-made-by-package || tuapt_die "the purge kept no record of what the package made in /vms"
cin getent passwd tuap >/dev/null || tuapt_die "the purge deleted the user tuap although /vms still holds its files"
[ "$(cin getent group libvirt kvm | cut -d: -f1,3 | tr '\n' ' ')" = "$libvirt_groups" ] ||
	tuapt_die "the purge changed the groups libvirt and kvm"
[ "$(cin dpkg-query -W -f '${Status}' tuap-agent)" = "install ok installed" ] || tuapt_die "tuap-agent went with tuap"
# once /vms holds nothing of tuapd's, a reinstall and a purge remove it and the user tuap too (the group tuap
# stays: op is still in it)
phase purge-empty
cin rm -rf "/vms/$DOMAIN"
install_debs new
cin test ! -e /vms/.tuap-made-by-package || tuapt_die "the postinst did not take back /vms/.tuap-made-by-package"
check_service
IN_DEADLINE=120 cin apt-get purge -y -q tuap tuap-agent >>"$W/logs/apt.log" 2>&1 || { tail -n 20 "$W/logs/apt.log" >&2; tuapt_die "apt-get purge failed"; }
for p in /vms /var/lib/tuap /etc/tuap /usr/sbin/tuap-agent /usr/lib/tuap; do
	cin test ! -e "$p" || tuapt_die "$p is still there after the second purge"
done
! cin getent passwd tuap >/dev/null || tuapt_die "the purge left the user tuap although /vms is gone"
[ "$(cin getent group tuap | cut -d: -f4)" = op ] || tuapt_die "group tuap: '$(cin getent group tuap)', expected kept with op in it"
[ "$(cin getent group libvirt kvm | cut -d: -f1,3 | tr '\n' ' ')" = "$libvirt_groups" ] ||
	tuapt_die "the purge changed the groups libvirt and kvm"
phase
echo "PASS: tuap $OLD_V ($OLD_FROM) then $NEW_V on a booted Debian 12: tuapd as tuap, paths, access by group, provision --existing, upgrade keeps the job and the conffile, purge removes what the package made"
