#!/bin/bash
# test_push.sh — existing hosts (depends_on, admin_user): tuapd pushes tuap-agent over SSH and
# runs the steps through it. The "existing host" is a throwaway Debian root (tests/lib/chroot.sh)
# in its own network namespace, running the real sshd on 192.0.2.2, with an admin user that has
# passwordless sudo and one that has not; tuapd runs in a second namespace on 192.0.2.1 and
# reaches the host only over that veth pair. The chroot has no systemd, so what runs there is
# the fallback: the supervise script started with setsid (pidfile /run/tuap-agent/DOMAIN.pid).
#   1. host key unknown to tuapd -> refused with the offered fingerprint; sshd saw no login,
#      nothing on the host, no key enrolled;
#   2. host key changed (another key in known_hosts) -> refused with the fingerprint;
#      after fixing known_hosts, `provision --resume` pushes and completes users, data, make;
#   3. admin_user without passwordless sudo -> clear error naming user and host; nothing on
#      the host changed;
#   4. a second domain on the same host, depends_on naming the first domain (resolved to its
#      host): both complete, each with its own agent, config, state, site and users; a's agent
#      is not restarted by b's push; no tuapd credential on the host;
#   5. tuap-ctl status, run (a target, output streamed) and update-data (new tree, make again);
#   6. re-provision with an upgraded agent binary: replaced on the host, agent restarted,
#      all steps again.
# Exits 77 (skip) when not root, without netns support or without the binaries.
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/chroot.sh"

skip_unless_root
skip_unless_netns
skip_unless_cmd ssh ssh-keygen tar
[ -x "${TUAPD:-}" ] || tuapt_skip "TUAPD is not set (run through ctest)"
[ -x "${TUAP_CTL:-}" ] || tuapt_skip "TUAP_CTL is not set (run through ctest)"
AGENT=${TUAP_SHIP_AGENT:-${TUAP_AGENT:-}} # the self-contained build: it runs in the chroot
[ -x "$AGENT" ] || tuapt_skip "tuap-agent is not built"

HV_IP=192.0.2.1
HOST_IP=192.0.2.2
tmpdir_new W
mkdir -p "$W/logs" "$W/sites"
TUAPT_LOGDIR=$W/logs

phase netns
netns_new HV hv
netns_new H host
netns_veth "$HV" veth-hv "$HV_IP/24" "$H" veth-h "$HOST_IP/24"

# --- the existing host: sshd, an admin with passwordless sudo, one without
phase host-root
chroot_new R
UPPER=$(dirname "$R")/upper # the overlay's upper dir: every file the test changed on the host
chroot_run "$H" "$R" ssh-keygen -A >/dev/null
for u in admin nosudo; do
	chroot_run "$H" "$R" useradd -m -s /bin/bash "$u"
	chroot_run "$H" "$R" usermod -p '*' "$u" # no password, but not locked (sshd refuses those)
done
echo 'admin ALL=(ALL) NOPASSWD:ALL' >"$R/etc/sudoers.d/admin"
chmod 0440 "$R/etc/sudoers.d/admin"
chroot_bg "$H" "$R" SSHD /usr/sbin/sshd -D -e -o "ListenAddress=$HOST_IP" -o UsePAM=no \
	-o PasswordAuthentication=no -o PermitRootLogin=prohibit-password
SSHD_LOG=$(ls "$W"/logs/sh.*.log | tail -n 1)
wait_for "sshd on $HOST_IP:22" 20 port_open "$H" "$HOST_IP" 22

# alive PID: running and not a zombie (the supervisors are orphans; nobody may reap them)
alive() {
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]
}

# host_clean: nothing of tuap's on the host, and sshd let nobody in
host_clean() {
	local f
	for f in usr/local/sbin/tuap-agent etc/tuap-agent var/lib/tuap-agent run/tuap-agent srv/tuap; do
		[ ! -e "$R/$f" ] || tuapt_die "$1: /$f exists on the host"
	done
	! ls "$R"/tmp/tuap-push.* >/dev/null 2>&1 || tuapt_die "$1: a push directory is left in /tmp"
	! grep -q "Accepted publickey" "$SSHD_LOG" || tuapt_die "$1: sshd accepted a login"
}

# --- tuapd
phase tuapd
cp "$AGENT" "$W/tuap-agent"
cat >"$W/tuapd.conf" <<EOF
pool_root = "$W/vms";
state_dir = "$W/state";
run_dir = "$W/run";
agent_listen = "tcp://$HV_IP:7807";
public_endpoint = "tcp://$HV_IP:7807";
agent_binary = "$W/tuap-agent";
ssh = { connect_timeout = 5; };
deadlines = { push = 60; hello = 60; users = 60; data = 60; make = 60; };
EOF
netns_bg "$HV" TUAPD_PID "$TUAPD" -d -c "$W/tuapd.conf"
TUAPD_LOG=$(ls "$W"/logs/tuapd.*.log)
export TUAP_SOCKET=$W/run/ctl.sock
wait_for "tuapd's control socket" 20 test -S "$TUAP_SOCKET"
SSHDIR=$W/state/ssh
[ -s "$SSHDIR/id_ed25519.pub" ] || tuapt_die "tuapd made no SSH key in $SSHDIR"
[ "$(stat -c %a "$SSHDIR/id_ed25519")" = 600 ] || tuapt_die "tuapd's SSH key is not 0600"
for u in admin nosudo; do
	install -d -m 0700 -o "$(stat -c %u "$R/home/$u")" "$R/home/$u/.ssh"
	install -m 0600 -o "$(stat -c %u "$R/home/$u")" "$SSHDIR/id_ed25519.pub" \
		"$R/home/$u/.ssh/authorized_keys"
done

# --- the sites
# site DOMAIN CONF USER: DOMAIN/ with provision.conf, users.yaml (USER) and data.tar.gz whose
# Makefile records where and as whom it ran; target hello prints a line.
site() {
	local d=$W/sites/$1
	mkdir -p "$d/tree"
	printf '%s\n' "$2" >"$d/provision.conf"
	printf 'users:\n  - name: %s\n    gecos: user of %s\n    shell: /bin/bash\n' "$3" "$1" >"$d/users.yaml"
	printf 'all:\n\techo "built %s $(VERSION)" > built.txt\n\tpwd > where.txt\n\t@echo "make of %s ran"\nhello:\n\t@echo "hello from %s"\n' \
		"$1" "$1" "$1" >"$d/tree/Makefile"
	echo "VERSION = 1" >"$d/tree/version.mk"
	sed -i '1i include version.mk' "$d/tree/Makefile"
	tar -C "$d/tree" -czf "$d/data.tar.gz" Makefile version.mk
}
site a.test "depends_on=$HOST_IP
admin_user=admin" alice
site b.test "depends_on=a.test
admin_user=admin" bob
site c.test "depends_on=$HOST_IP
admin_user=nosudo" carol

# ctl OUT ARGS...: tuap-ctl with a deadline, output (both streams) in OUT; returns its status.
ctl() {
	local out=$1
	shift
	timeout 180 "$TUAP_CTL" "$@" >"$out" 2>&1
}
expect_fail() { # OUT TEXT...: the command failed and said each TEXT
	local out=$1 t
	shift
	for t in "$@"; do
		grep -qF -- "$t" "$out" || { cat "$out" >&2; tuapt_die "output lacks '$t'"; }
	done
}

# --- 1. unknown host key
phase unknown-host-key
FPR=$(ssh-keygen -lf "$R/etc/ssh/ssh_host_ed25519_key.pub" | awk '{print $2}')
if ctl "$W/p1.out" provision "$W/sites/a.test"; then
	cat "$W/p1.out" >&2
	tuapt_die "provision with an unknown host key succeeded"
fi
expect_fail "$W/p1.out" "FAILED" "host key of $HOST_IP is not known" "$FPR" "nothing was sent"
host_clean "unknown host key"
[ ! -e "$W/state/keys/a.test.pub" ] || tuapt_die "a key was enrolled for a refused push"

# --- 2. changed host key, then --resume with the right one
phase changed-host-key
ssh-keygen -q -t ed25519 -N '' -f "$W/other"
echo "$HOST_IP $(cut -d' ' -f1,2 "$W/other.pub")" >>"$SSHDIR/known_hosts"
if ctl "$W/p2.out" provision "$W/sites/a.test"; then
	cat "$W/p2.out" >&2
	tuapt_die "provision with a changed host key succeeded"
fi
expect_fail "$W/p2.out" "FAILED" "host key of $HOST_IP has CHANGED" "$FPR" "nothing was sent"
host_clean "changed host key"

phase provision-a
grep -v "^$HOST_IP " "$SSHDIR/known_hosts" >"$W/kh" && cat "$W/kh" >"$SSHDIR/known_hosts"
echo "$HOST_IP $(cut -d' ' -f1,2 "$R/etc/ssh/ssh_host_ed25519_key.pub")" >>"$SSHDIR/known_hosts"
ctl "$W/pa.out" provision --resume "$W/sites/a.test" || { cat "$W/pa.out" >&2; tuapt_die "provision --resume a.test failed"; }
grep -q "no systemd" "$W/pa.out" || { cat "$W/pa.out" >&2; tuapt_die "the fallback supervisor did not report"; }
grep -q "make of a.test ran" "$W/pa.out" || { cat "$W/pa.out" >&2; tuapt_die "make's output was not streamed"; }
[ "$(cat "$R/srv/tuap/a.test/built.txt")" = "built a.test 1" ] || tuapt_die "a.test's make did not run"
[ "$(cat "$R/srv/tuap/a.test/where.txt")" = /srv/tuap/a.test ] || tuapt_die "a.test's make ran elsewhere"
grep -q '^alice:.*:user of a.test:' "$R/etc/passwd" || tuapt_die "user alice was not created"
[ "$(stat -c %a "$R/etc/tuap-agent/domains/a.test.conf")" = 600 ] || tuapt_die "a.test.conf is not 0600"
grep -q '^state_dir = /var/lib/tuap-agent/domains/a.test$' "$R/etc/tuap-agent/domains/a.test.conf" ||
	tuapt_die "a.test's agent has another state dir"
grep -q "^endpoint = tcp://$HV_IP:7807$" "$R/etc/tuap-agent/domains/a.test.conf" ||
	tuapt_die "a.test's agent does not connect to public_endpoint"
cmp -s "$W/tuap-agent" "$R/usr/local/sbin/tuap-agent" || tuapt_die "the agent binary on the host differs"
A_SUP=$(cat "$R/run/tuap-agent/a.test.pid")
A_AGENT=$(cat "$R/run/tuap-agent/a.test.agent.pid")
alive "$A_SUP" && alive "$A_AGENT" || tuapt_die "a.test's supervisor or agent is not running"
! ls "$R"/tmp/tuap-push.* >/dev/null 2>&1 || tuapt_die "the push directory was left in /tmp"

# --- 3. no passwordless sudo
phase no-sudo
# what a failed sudo writes itself (its timestamp dir, logs) and the login's home do not count
host_files() {
	(cd "$UPPER" && find . -path ./home/nosudo -prune -o -path ./var/log -prune -o \
		-path ./run/sudo -prune -o -print | sort | md5sum)
}
before=$(host_files)
if ctl "$W/pc.out" provision "$W/sites/c.test"; then
	cat "$W/pc.out" >&2
	tuapt_die "provision as a user without passwordless sudo succeeded"
fi
expect_fail "$W/pc.out" "FAILED" "nosudo on $HOST_IP has no passwordless sudo" "nothing was changed"
[ ! -e "$R/etc/tuap-agent/domains/c.test.conf" ] || tuapt_die "c.test was installed without sudo"
[ ! -e "$W/state/keys/c.test.pub" ] || tuapt_die "a key was enrolled for c.test"
[ "$before" = "$(host_files)" ] || tuapt_die "the host's files changed"

# --- 4. a second domain on the same host, through depends_on=a.test
phase provision-b
ctl "$W/pb.out" provision "$W/sites/b.test" || { cat "$W/pb.out" >&2; tuapt_die "provision b.test failed"; }
grep -q "admin@$HOST_IP" "$W/pb.out" || { cat "$W/pb.out" >&2; tuapt_die "b.test was not pushed to a.test's host"; }
[ "$(cat "$R/srv/tuap/b.test/built.txt")" = "built b.test 1" ] || tuapt_die "b.test's make did not run"
[ "$(cat "$R/srv/tuap/a.test/built.txt")" = "built a.test 1" ] || tuapt_die "b.test's make touched a.test's site"
grep -q '^bob:' "$R/etc/passwd" || tuapt_die "user bob was not created"
B_SUP=$(cat "$R/run/tuap-agent/b.test.pid")
[ "$B_SUP" != "$A_SUP" ] && alive "$B_SUP" || tuapt_die "b.test has no supervisor of its own"
[ "$(cat "$R/run/tuap-agent/a.test.agent.pid")" = "$A_AGENT" ] && alive "$A_AGENT" ||
	tuapt_die "a.test's agent was restarted by b.test's push"
for d in a.test b.test; do
	[ "$(stat -c %a "$R/var/lib/tuap-agent/domains/$d")" = 700 ] || tuapt_die "$d's state dir is not 0700"
done
ka=$(grep '^public_key' "$R/etc/tuap-agent/domains/a.test.conf")
kb=$(grep '^public_key' "$R/etc/tuap-agent/domains/b.test.conf")
[ "$ka" != "$kb" ] || tuapt_die "a.test and b.test share an agent key"
# no credential of the hypervisor's on the host: tuapd's SSH key, its CURVE secret
for secret in "$(sed -n 2p "$SSHDIR/id_ed25519")" "$(grep -v '^#' "$W/state/keys/server.key" | head -n 1)"; do
	[ -n "$secret" ] || tuapt_die "cannot read a tuapd secret to look for"
	! grep -rqF -- "$secret" "$UPPER" || tuapt_die "a tuapd secret is on the host"
done

# --- 5. managing later
phase status-run-update
ctl "$W/st.out" status a.test || { cat "$W/st.out" >&2; tuapt_die "status a.test failed"; }
grep -q "existing host" "$W/st.out" || { cat "$W/st.out" >&2; tuapt_die "status does not show the existing host"; }
ctl "$W/run.out" run a.test make hello || { cat "$W/run.out" >&2; tuapt_die "run a.test hello failed"; }
grep -q "hello from a.test" "$W/run.out" || { cat "$W/run.out" >&2; tuapt_die "run's output was not streamed"; }
ctl "$W/runb.out" run b.test make hello || { cat "$W/runb.out" >&2; tuapt_die "run b.test hello failed"; }
grep -q "hello from b.test" "$W/runb.out" || { cat "$W/runb.out" >&2; tuapt_die "b.test's make ran in the wrong tree"; }
echo "VERSION = 2" >"$W/sites/a.test/tree/version.mk"
tar -C "$W/sites/a.test/tree" -czf "$W/sites/a.test/data.tar.gz" Makefile version.mk
ctl "$W/up.out" update-data "$W/sites/a.test" || { cat "$W/up.out" >&2; tuapt_die "update-data a.test failed"; }
grep -q "make of a.test ran" "$W/up.out" || { cat "$W/up.out" >&2; tuapt_die "update-data's make output was not streamed"; }
[ "$(cat "$R/srv/tuap/a.test/built.txt")" = "built a.test 2" ] || tuapt_die "update-data did not rebuild a.test"
[ "$(cat "$R/srv/tuap/b.test/built.txt")" = "built b.test 1" ] || tuapt_die "update-data of a.test touched b.test"

# --- 6. re-provision with an upgraded agent
phase upgrade
printf '\n# upgraded\n' >>"$W/tuap-agent"
ctl "$W/re.out" provision "$W/sites/a.test" || { cat "$W/re.out" >&2; tuapt_die "re-provision of a.test failed"; }
cmp -s "$W/tuap-agent" "$R/usr/local/sbin/tuap-agent" || tuapt_die "the upgraded agent was not installed"
grep -q "restarted by its supervisor" "$W/re.out" || { cat "$W/re.out" >&2; tuapt_die "the agent was not restarted"; }
[ "$(cat "$R/run/tuap-agent/a.test.agent.pid")" != "$A_AGENT" ] || tuapt_die "a.test's agent still has its old pid"
[ "$(cat "$R/run/tuap-agent/a.test.pid")" = "$A_SUP" ] || tuapt_die "a.test's supervisor was replaced"
grep -q "make of a.test ran" "$W/re.out" || { cat "$W/re.out" >&2; tuapt_die "make did not run again"; }
ctl "$W/runb2.out" run b.test make hello || { cat "$W/runb2.out" >&2; tuapt_die "b.test's agent stopped working"; }
phase
echo "PASS: push over ssh (host keys, sudo check, fallback supervisor), two domains on one host, status/run/update-data, upgrade"
