#!/bin/sh
# The push installer (deploy/push/install) run for real under dash against a throwaway root:
# the systemd branch with a recording systemctl (first install, unchanged re-run, changed config,
# changed unit, a second domain), the supervise branch with a stand-in agent (started, left
# alone, restarted on a new binary, the supervisor replaced when it changes), a binary for
# another machine and a bad domain refused with nothing installed. And the template unit through
# `systemd-analyze verify`. test_push.sh runs the installer over ssh in a chroot; this covers
# the branches that one cannot (systemd).
set -eu

SRC=${TUAP_SRC:?TUAP_SRC is not set}
T=$(mktemp -d /tmp/tuap-push-install.XXXXXX)
SUP_PIDS=
cleanup() {
	for p in $SUP_PIDS; do
		kill "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

mode() {
	stat -c %a "$1"
}

# alive PID: running, not a zombie (processes the installer starts may end up with a parent
# that does not reap them)
alive() {
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]
}

P=$T/payload
ROOT=$T/root
LOG=$T/systemctl.log
mkdir -p "$P" "$ROOT"
cp "$SRC/deploy/push/install" "$SRC/deploy/push/supervise" "$SRC/deploy/push/tuap-agent@.service" "$P/"
# the stand-in agent: records its arguments and stays up
printf '#!/bin/sh\necho "$@" > "%s/agent.args.$$"\nexec sleep 300\n' "$T" > "$P/tuap-agent"
printf 'secret_key = one\n' > "$P/agent.conf"
uname -m > "$P/machine"
printf '#!/bin/sh\necho "$*" >> "%s"\n' "$LOG" > "$T/systemctl"
chmod 755 "$T/systemctl"

# run INIT DOMAIN: the installer as tuapd's remote script runs it
run() {
	: > "$LOG"
	TUAP_INSTALL_ROOT=$ROOT TUAP_SYSTEMCTL=$T/systemctl TUAP_INIT=$1 dash "$P/install" "$P" "$2" \
		> "$T/out" 2>&1
}

# --- systemd
# 1. first install: files with their modes, unit loaded, the domain's instance enabled and
# (re)started
run systemd a.test || fail "first run: $(cat "$T/out")"
cmp -s "$P/tuap-agent" "$ROOT/usr/local/sbin/tuap-agent" || fail "binary not installed"
[ "$(mode "$ROOT/usr/local/sbin/tuap-agent")" = 755 ] || fail "binary mode"
[ "$(mode "$ROOT/etc/tuap-agent/domains/a.test.conf")" = 600 ] || fail "config mode"
[ "$(mode "$ROOT/etc/tuap-agent/domains")" = 700 ] || fail "config dir mode"
[ "$(mode "$ROOT/var/lib/tuap-agent/domains/a.test")" = 700 ] || fail "state dir mode"
[ "$(mode "$ROOT/etc/systemd/system/tuap-agent@.service")" = 644 ] || fail "unit mode"
[ "$(cat "$LOG")" = "daemon-reload
enable --quiet tuap-agent@a.test.service
restart tuap-agent@a.test.service" ] || fail "first run systemctl calls: $(cat "$LOG")"
[ "$(tail -n 1 "$T/out")" = "tuap-install: done: tuap-agent@a.test.service restarted (systemd)" ] ||
	fail "first run's last line: $(cat "$T/out")"

# 2. the same again: nothing rewritten, the instance only ensured running
run systemd a.test || fail "second run: $(cat "$T/out")"
[ "$(cat "$LOG")" = "enable --quiet tuap-agent@a.test.service
start tuap-agent@a.test.service" ] || fail "second run systemctl calls: $(cat "$LOG")"
grep -q installed "$T/out" && fail "second run rewrote files: $(cat "$T/out")"

# 3. a new config (the fresh keys of a re-push): installed, restarted, no daemon-reload
printf 'secret_key = two\n' > "$P/agent.conf"
run systemd a.test || fail "third run: $(cat "$T/out")"
grep -q 'two' "$ROOT/etc/tuap-agent/domains/a.test.conf" || fail "config not updated"
[ "$(cat "$LOG")" = "enable --quiet tuap-agent@a.test.service
restart tuap-agent@a.test.service" ] || fail "third run systemctl calls: $(cat "$LOG")"

# 4. a second domain: its own config and instance; a.test's files untouched
before=$(cat "$ROOT/etc/tuap-agent/domains/a.test.conf")
run systemd b.example-site.test || fail "second domain: $(cat "$T/out")"
[ -f "$ROOT/etc/tuap-agent/domains/b.example-site.test.conf" ] || fail "no config for b"
[ "$(cat "$ROOT/etc/tuap-agent/domains/a.test.conf")" = "$before" ] || fail "a.test's config changed"
[ "$(cat "$LOG")" = "enable --quiet tuap-agent@b.example-site.test.service
restart tuap-agent@b.example-site.test.service" ] || fail "second domain calls: $(cat "$LOG")"

# 5. refused, nothing installed: a binary for another machine, a bad domain name
echo not-this-machine > "$P/machine"
if run systemd c.test; then
	fail "a binary for another machine was installed"
fi
grep -q "built for not-this-machine" "$T/out" || fail "no message for the machine: $(cat "$T/out")"
[ ! -e "$ROOT/etc/tuap-agent/domains/c.test.conf" ] || fail "c.test installed for another machine"
uname -m > "$P/machine"
for bad in '../x' '-rf' 'a b' '$(id)' ''; do
	if run systemd "$bad"; then
		fail "domain '$bad' accepted"
	fi
	[ ! -s "$LOG" ] || fail "systemctl called for domain '$bad'"
done

# --- no systemd: the supervise script
rm -rf "$ROOT"
mkdir -p "$ROOT"
run supervise a.test || fail "supervise first run: $(cat "$T/out")"
grep -q "done: tuap-agent for a.test started by its supervisor" "$T/out" || fail "first: $(cat "$T/out")"
[ ! -s "$LOG" ] || fail "systemctl called without systemd"
sup=$(cat "$ROOT/run/tuap-agent/a.test.pid")
SUP_PIDS="$SUP_PIDS $sup"
alive "$sup" || fail "supervisor not running"
i=0
while [ ! -s "$ROOT/run/tuap-agent/a.test.agent.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
agent=$(cat "$ROOT/run/tuap-agent/a.test.agent.pid")
alive "$agent" || fail "agent not running"
grep -q -- "--config $ROOT/etc/tuap-agent/domains/a.test.conf" "$T"/agent.args.* || fail "agent args"

# unchanged: left alone
run supervise a.test || fail "supervise second run: $(cat "$T/out")"
grep -q "running, unchanged" "$T/out" || fail "second: $(cat "$T/out")"
[ "$(cat "$ROOT/run/tuap-agent/a.test.agent.pid")" = "$agent" ] || fail "agent restarted for nothing"

# a new binary: the supervisor restarts the agent, and stays
printf '# v2\n' >> "$P/tuap-agent"
run supervise a.test || fail "supervise third run: $(cat "$T/out")"
grep -q "restarted by its supervisor" "$T/out" || fail "third: $(cat "$T/out")"
i=0
while [ "$(cat "$ROOT/run/tuap-agent/a.test.agent.pid" 2>/dev/null)" = "$agent" ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
new=$(cat "$ROOT/run/tuap-agent/a.test.agent.pid")
[ "$new" != "$agent" ] && alive "$new" || fail "agent not restarted"
! alive "$agent" || fail "old agent still running"
[ "$(cat "$ROOT/run/tuap-agent/a.test.pid")" = "$sup" ] || fail "supervisor replaced for a new binary"

# a new supervise script: replaced (the old one stops its agent)
printf '# v2\n' >> "$P/supervise"
run supervise a.test || fail "supervise fourth run: $(cat "$T/out")"
grep -q "supervisor for a.test replaced" "$T/out" || fail "fourth: $(cat "$T/out")"
sup2=$(cat "$ROOT/run/tuap-agent/a.test.pid")
SUP_PIDS="$SUP_PIDS $sup2"
[ "$sup2" != "$sup" ] && alive "$sup2" || fail "no new supervisor"
! alive "$sup" || fail "old supervisor still running"
! alive "$new" || fail "old supervisor's agent still running"
kill "$sup2"
i=0
while [ -e "$ROOT/run/tuap-agent/a.test.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ ! -e "$ROOT/run/tuap-agent/a.test.pid" ] || fail "the supervisor left its pidfile on TERM"

# The unit file: systemd's own checks on an instance (the binary does not exist on this
# machine, which is the only complaint allowed).
if command -v systemd-analyze > /dev/null; then
	cp "$SRC/deploy/push/tuap-agent@.service" "$T/tuap-agent@a.test.service"
	systemd-analyze verify --man=no "$T/tuap-agent@a.test.service" > "$T/verify" 2>&1 || true
	if grep -v "Command /usr/local/sbin/tuap-agent is not executable" "$T/verify" | grep -q .; then
		fail "systemd-analyze verify: $(cat "$T/verify")"
	fi
else
	echo "systemd-analyze not found: unit file not verified"
fi

echo "push install: ok"
