#!/bin/bash
# The push installer (deploy/push/install) run for real under dash against a throwaway root:
# the systemd branch with a recording systemctl (first install, unchanged re-run, changed config,
# changed unit, a second domain), the supervise branch with a stand-in agent (started, left
# alone, restarted on a new binary, the supervisor replaced when it changes), a binary for
# another machine and a bad domain refused with nothing installed. And the template unit through
# `systemd-analyze verify`. test_push.sh runs the installer over ssh in a chroot; this covers
# the branches that one cannot (systemd).
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
SRC=$src
tmpdir_new T

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
run systemd a.test || tuapt_die "first run: $(cat "$T/out")"
cmp -s "$P/tuap-agent" "$ROOT/usr/local/sbin/tuap-agent" || tuapt_die "binary not installed"
[ "$(mode "$ROOT/usr/local/sbin/tuap-agent")" = 755 ] || tuapt_die "binary mode"
[ "$(mode "$ROOT/etc/tuap-agent/domains/a.test.conf")" = 600 ] || tuapt_die "config mode"
[ "$(mode "$ROOT/etc/tuap-agent/domains")" = 700 ] || tuapt_die "config dir mode"
[ "$(mode "$ROOT/var/lib/tuap-agent/domains/a.test")" = 700 ] || tuapt_die "state dir mode"
[ "$(mode "$ROOT/etc/systemd/system/tuap-agent@.service")" = 644 ] || tuapt_die "unit mode"
[ "$(cat "$LOG")" = "daemon-reload
enable --quiet tuap-agent@a.test.service
restart tuap-agent@a.test.service" ] || tuapt_die "first run systemctl calls: $(cat "$LOG")"
[ "$(tail -n 1 "$T/out")" = "tuap-install: done: tuap-agent@a.test.service restarted (systemd)" ] ||
	tuapt_die "first run's last line: $(cat "$T/out")"

# 2. the same again: nothing rewritten, the instance only ensured running
run systemd a.test || tuapt_die "second run: $(cat "$T/out")"
[ "$(cat "$LOG")" = "enable --quiet tuap-agent@a.test.service
start tuap-agent@a.test.service" ] || tuapt_die "second run systemctl calls: $(cat "$LOG")"
grep -q installed "$T/out" && tuapt_die "second run rewrote files: $(cat "$T/out")"

# 3. a new config (the fresh keys of a re-push): installed, restarted, no daemon-reload
printf 'secret_key = two\n' > "$P/agent.conf"
run systemd a.test || tuapt_die "third run: $(cat "$T/out")"
grep -q 'two' "$ROOT/etc/tuap-agent/domains/a.test.conf" || tuapt_die "config not updated"
[ "$(cat "$LOG")" = "enable --quiet tuap-agent@a.test.service
restart tuap-agent@a.test.service" ] || tuapt_die "third run systemctl calls: $(cat "$LOG")"

# 4. a second domain: its own config and instance; a.test's files untouched
before=$(cat "$ROOT/etc/tuap-agent/domains/a.test.conf")
run systemd b.example-site.test || tuapt_die "second domain: $(cat "$T/out")"
[ -f "$ROOT/etc/tuap-agent/domains/b.example-site.test.conf" ] || tuapt_die "no config for b"
[ "$(cat "$ROOT/etc/tuap-agent/domains/a.test.conf")" = "$before" ] || tuapt_die "a.test's config changed"
[ "$(cat "$LOG")" = "enable --quiet tuap-agent@b.example-site.test.service
restart tuap-agent@b.example-site.test.service" ] || tuapt_die "second domain calls: $(cat "$LOG")"

# 5. refused, nothing installed: a binary for another machine, a bad domain name
echo not-this-machine > "$P/machine"
if run systemd c.test; then
	tuapt_die "a binary for another machine was installed"
fi
grep -q "built for not-this-machine" "$T/out" || tuapt_die "no message for the machine: $(cat "$T/out")"
[ ! -e "$ROOT/etc/tuap-agent/domains/c.test.conf" ] || tuapt_die "c.test installed for another machine"
uname -m > "$P/machine"
for bad in '../x' '-rf' 'a b' '$(id)' ''; do
	if run systemd "$bad"; then
		tuapt_die "domain '$bad' accepted"
	fi
	[ ! -s "$LOG" ] || tuapt_die "systemctl called for domain '$bad'"
done

# --- no systemd: the supervise script
rm -rf "$ROOT"
mkdir -p "$ROOT"
run supervise a.test || tuapt_die "supervise first run: $(cat "$T/out")"
grep -q "done: tuap-agent for a.test started by its supervisor" "$T/out" || tuapt_die "first: $(cat "$T/out")"
[ ! -s "$LOG" ] || tuapt_die "systemctl called without systemd"
sup=$(cat "$ROOT/run/tuap-agent/a.test.pid")
pid_record "$sup"
alive "$sup" || tuapt_die "supervisor not running"
i=0
while [ ! -s "$ROOT/run/tuap-agent/a.test.agent.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
agent=$(cat "$ROOT/run/tuap-agent/a.test.agent.pid")
alive "$agent" || tuapt_die "agent not running"
grep -q -- "--config $ROOT/etc/tuap-agent/domains/a.test.conf" "$T"/agent.args.* || tuapt_die "agent args"

# unchanged: left alone
run supervise a.test || tuapt_die "supervise second run: $(cat "$T/out")"
grep -q "running, unchanged" "$T/out" || tuapt_die "second: $(cat "$T/out")"
[ "$(cat "$ROOT/run/tuap-agent/a.test.agent.pid")" = "$agent" ] || tuapt_die "agent restarted for nothing"

# a new binary: the supervisor restarts the agent, and stays
printf '# v2\n' >> "$P/tuap-agent"
run supervise a.test || tuapt_die "supervise third run: $(cat "$T/out")"
grep -q "restarted by its supervisor" "$T/out" || tuapt_die "third: $(cat "$T/out")"
i=0
while [ "$(cat "$ROOT/run/tuap-agent/a.test.agent.pid" 2>/dev/null)" = "$agent" ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
new=$(cat "$ROOT/run/tuap-agent/a.test.agent.pid")
[ "$new" != "$agent" ] && alive "$new" || tuapt_die "agent not restarted"
! alive "$agent" || tuapt_die "old agent still running"
[ "$(cat "$ROOT/run/tuap-agent/a.test.pid")" = "$sup" ] || tuapt_die "supervisor replaced for a new binary"

# a new supervise script: replaced (the old one stops its agent)
printf '# v2\n' >> "$P/supervise"
run supervise a.test || tuapt_die "supervise fourth run: $(cat "$T/out")"
grep -q "supervisor for a.test replaced" "$T/out" || tuapt_die "fourth: $(cat "$T/out")"
sup2=$(cat "$ROOT/run/tuap-agent/a.test.pid")
pid_record "$sup2"
[ "$sup2" != "$sup" ] && alive "$sup2" || tuapt_die "no new supervisor"
! alive "$sup" || tuapt_die "old supervisor still running"
! alive "$new" || tuapt_die "old supervisor's agent still running"
kill "$sup2"
i=0
while [ -e "$ROOT/run/tuap-agent/a.test.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ ! -e "$ROOT/run/tuap-agent/a.test.pid" ] || tuapt_die "the supervisor left its pidfile on TERM"

# The unit file: systemd's own checks on an instance (the binary does not exist on this
# machine, which is the only complaint allowed).
if command -v systemd-analyze > /dev/null; then
	cp "$SRC/deploy/push/tuap-agent@.service" "$T/tuap-agent@a.test.service"
	systemd-analyze verify --man=no "$T/tuap-agent@a.test.service" > "$T/verify" 2>&1 || true
	if grep -v "Command /usr/local/sbin/tuap-agent is not executable" "$T/verify" | grep -q .; then
		tuapt_die "systemd-analyze verify: $(cat "$T/verify")"
	fi
else
	echo "systemd-analyze not found: unit file not verified"
fi

echo "push install: ok"
