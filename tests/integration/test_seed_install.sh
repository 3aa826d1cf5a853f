#!/bin/bash
# The seed installer (deploy/seed/install) run for real under dash against a throwaway root,
# with a recording systemctl: first install, idempotent re-run, changed config, baked binary,
# broken seed. And the unit file through `systemd-analyze verify`.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
SRC=$src
tmpdir_new T

mode() {
	stat -c %a "$1"
}

SEED=$T/seed
ROOT=$T/root
LOG=$T/systemctl.log
mkdir -p "$SEED/tuap" "$ROOT"
cp "$SRC/deploy/seed/install" "$SEED/tuap/install"
cp "$SRC/deploy/seed/tuap-agent.service" "$SEED/tuap/tuap-agent.service"
printf '#!/bin/sh\necho agent v1\n' > "$SEED/tuap/tuap-agent"
printf 'secret = "one"\n' > "$SEED/tuap/agent.conf"
printf 'instance-id: tuap-1\n' > "$SEED/meta-data"
printf 'version: 2\n' > "$SEED/network-config"
printf '#cloud-config\n' > "$SEED/user-data"
printf '#!/bin/sh\necho "$*" >> "%s"\n' "$LOG" > "$T/systemctl"
chmod 755 "$T/systemctl"

run() {
	: > "$LOG"
	TUAP_INSTALL_ROOT=$ROOT TUAP_SYSTEMCTL=$T/systemctl dash "$SEED/tuap/install" "$SEED" \
		> "$T/out" 2>&1
}

# 1. first install: everything copied with its mode, unit loaded, agent (re)started
run || tuapt_die "first run: $(cat "$T/out")"
cmp -s "$SEED/tuap/tuap-agent" "$ROOT/usr/local/sbin/tuap-agent" || tuapt_die "binary not installed"
[ "$(mode "$ROOT/usr/local/sbin/tuap-agent")" = 755 ] || tuapt_die "binary mode"
[ "$(mode "$ROOT/etc/tuap-agent/agent.conf")" = 600 ] || tuapt_die "agent.conf mode"
[ "$(mode "$ROOT/etc/tuap-agent")" = 700 ] || tuapt_die "config dir mode"
[ "$(mode "$ROOT/etc/systemd/system/tuap-agent.service")" = 644 ] || tuapt_die "unit mode"
# cloud-init's files as NoCloud's local seed, for the boots after the ISO is ejected
NC=$ROOT/var/lib/cloud/seed/nocloud
for f in meta-data network-config user-data; do
	cmp -s "$SEED/$f" "$NC/$f" || tuapt_die "$f not copied to the local NoCloud seed"
	[ "$(mode "$NC/$f")" = 600 ] || tuapt_die "local seed $f mode $(mode "$NC/$f")"
done
[ "$(mode "$NC")" = 700 ] || tuapt_die "local seed dir mode"
[ "$(cat "$LOG")" = "daemon-reload
--no-block --no-reload enable tuap-agent.service
--no-block restart tuap-agent.service" ] || tuapt_die "first run systemctl calls: $(cat "$LOG")"

# 2. same seed again (the next boot): nothing rewritten, the agent is only ensured running
run || tuapt_die "second run: $(cat "$T/out")"
[ "$(cat "$LOG")" = "--no-block --no-reload enable --now tuap-agent.service" ] ||
	tuapt_die "second run systemctl calls: $(cat "$LOG")"
grep -q installed "$T/out" && tuapt_die "second run rewrote files: $(cat "$T/out")"

# 2b. a changed user-data alone: copied to the local seed, the agent not restarted for it
printf '#cloud-config\nhostname: x\n' > "$SEED/user-data"
run || tuapt_die "user-data change run: $(cat "$T/out")"
cmp -s "$SEED/user-data" "$NC/user-data" || tuapt_die "changed user-data not copied"
[ "$(cat "$LOG")" = "--no-block --no-reload enable --now tuap-agent.service" ] ||
	tuapt_die "user-data change systemctl calls: $(cat "$LOG")"

# 3. a changed config: installed, agent restarted, no daemon-reload (the unit is the same)
printf 'secret = "two"\n' > "$SEED/tuap/agent.conf"
run || tuapt_die "third run: $(cat "$T/out")"
grep -q '"two"' "$ROOT/etc/tuap-agent/agent.conf" || tuapt_die "config not updated"
[ "$(mode "$ROOT/etc/tuap-agent/agent.conf")" = 600 ] || tuapt_die "agent.conf mode after update"
[ "$(cat "$LOG")" = "--no-block --no-reload enable tuap-agent.service
--no-block restart tuap-agent.service" ] || tuapt_die "third run systemctl calls: $(cat "$LOG")"

# 3b. a changed unit alone: reloaded and restarted
echo "# changed" >> "$SEED/tuap/tuap-agent.service"
run || tuapt_die "unit change run: $(cat "$T/out")"
[ "$(cat "$LOG")" = "daemon-reload
--no-block --no-reload enable tuap-agent.service
--no-block restart tuap-agent.service" ] || tuapt_die "unit change systemctl calls: $(cat "$LOG")"

# 4. a binary baked into the image wins over the seed's
mkdir -p "$ROOT/usr/sbin"
printf '#!/bin/sh\necho baked\n' > "$ROOT/usr/sbin/tuap-agent"
chmod 755 "$ROOT/usr/sbin/tuap-agent"
run || tuapt_die "fourth run: $(cat "$T/out")"
[ "$(readlink "$ROOT/usr/local/sbin/tuap-agent")" = /usr/sbin/tuap-agent ] ||
	tuapt_die "baked binary not linked"
grep -q restart "$LOG" || tuapt_die "agent not restarted onto the baked binary"
run || tuapt_die "fifth run: $(cat "$T/out")"
[ "$(cat "$LOG")" = "--no-block --no-reload enable --now tuap-agent.service" ] ||
	tuapt_die "baked re-run systemctl calls: $(cat "$LOG")"

# 5. not a tuap seed: refused, nothing started
rm "$SEED/tuap/agent.conf"
if run; then
	tuapt_die "a seed without agent.conf was accepted"
fi
grep -q "agent.conf is missing" "$T/out" || tuapt_die "no message for a broken seed: $(cat "$T/out")"
[ ! -s "$LOG" ] || tuapt_die "systemctl called for a broken seed"

# The unit file: systemd's own checks (the binary does not exist on this machine, which is the
# only complaint allowed).
if command -v systemd-analyze > /dev/null; then
	cp "$SRC/deploy/seed/tuap-agent.service" "$T/tuap-agent.service"
	systemd-analyze verify --man=no "$T/tuap-agent.service" > "$T/verify" 2>&1 || true
	if grep -v "Command /usr/local/sbin/tuap-agent is not executable" "$T/verify" | grep -q .; then
		tuapt_die "systemd-analyze verify: $(cat "$T/verify")"
	fi
else
	echo "systemd-analyze not found: unit file not verified"
fi

echo "seed install: ok"
