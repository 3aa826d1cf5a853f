#!/bin/bash
# test_agent_hostile.sh — what tuapd and the agent refuse, with the real tuapd and the shipped
# agent chrooted in a throwaway Debian root (layout of test_agent_chroot.sh, without packages).
# After one good provision --existing of example.test:
#   1. messages no agent may send: tests/lib/tuapwire.py connects with a valid enrolled key
#      (probe.test) and sends a Plan, an unknown body type, garbage, a StepEvent before any
#      Hello, a frame over max_message, and (after reconnecting and saying Hello) a StepEvent
#      for example.test's job. Each is dropped, answered with the right Error where the hub
#      answers; tuapd logs the drops and keeps serving (status answers, later jobs run);
#   2. a wrong key: an agent claiming example.test with a keypair tuapd does not know is refused
#      at the CURVE handshake (tuapd logs it with the key), never gets a job (its state dir
#      stays empty) while `tuap-ctl run example.test make` runs make through the real agent;
#   3. hostile data.tar.gz: every bad tarball of tests/data/make-tarballs goes to the agent
#      through tuapd's control socket (tuapwire.py update-data, since tuap-ctl refuses them
#      before sending). For the dangerous ones (absolute and '..' paths, symlinks and hardlinks
#      out of the tree, device nodes, fifos, over-long names, unreadable archives) the job must
#      fail in its data phase (the empty one: tuapd refuses the request), make must not run, the site tree must stay as it was, and nothing
#      may be created or changed anywhere in the root outside the agent's state dir and
#      /srv/tuap (checked by inode change time over the whole root after each tarball). The
#      others (harmless oddities tuap-ctl refuses for clarity) are shown with their outcome and
#      held to the same "nothing outside" rule, make's own /root/site-is-set-up aside.
# Exits 77 when not root, without netns support or without python3-zmq.
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/chroot.sh"
. "$src/tests/lib/tuap.sh"

skip_unless_root
skip_unless_netns
skip_unless_cmd debootstrap
tuap_need_bins
"$TUAPT_PY" -c 'import zmq; assert zmq.has("curve")' 2>/dev/null ||
	tuapt_skip "python3-zmq with CURVE is not installed (deploy/packages)"
WIRE=$src/tests/lib/tuapwire.py
RUNS=/var/lib/tuap-test-make-runs

agent_host_setup
mkdir -p "$W/hostile"

phase good-provision
MAXMSG=1048576
agent_up example.test "max_message = $MAXMSG;"
site_copy "$W/sites"
S=$W/sites/example.test
sed -i '/^packages=/d' "$S/provision.conf"
cat >"$S/site/Makefile" <<EOF
# test_agent_hostile: the good site; counts its runs
all:
	echo good >>$RUNS
EOF
ctl pack "$S" >/dev/null
ctl provision --existing --json "$S" >"$W/good.jsonl" 2>"$W/logs/good.err" ||
	{ tail -n 20 "$W/good.jsonl" "$W/logs/good.err" >&2; tuapt_die "the good provision failed"; }
GOOD_JOB=$("$TUAPT_PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["job"])' "$W/good.jsonl")
SITE=$R/srv/tuap/example.test
diff -r "$S/site" "$SITE" >&2 || tuapt_die "the good tree was not extracted"
[ "$(grep -c . "$R$RUNS")" = 1 ] || tuapt_die "make ran $(grep -c . "$R$RUNS") times"

# ------------------------------------------------------------------------------------------
phase bad-messages
ctl enroll probe.test -o "$W/probe.conf" >/dev/null
max=$MAXMSG
timeout 120 ip netns exec "$H" "$TUAPT_PY" "$WIRE" agent-probe "$W/probe.conf" "$max" "$GOOD_JOB" 3 \
	>"$W/probe.out" 2>&1 || { cat "$W/probe.out" >&2; tuapt_die "tuapwire.py agent-probe failed"; }
cat "$W/probe.out" >&2
[ "$(grep -c '^ok: ' "$W/probe.out")" = 8 ] || tuapt_die "the probe made $(grep -c '^ok: ' "$W/probe.out") of 8 checks"
for re in "agent probe\.test \($HADDR:?[0-9]*\): dropped message: .*plan" \
	"agent probe\.test \($HADDR:?[0-9]*\): dropped message: .*(unknown|60)" \
	"agent probe\.test \($HADDR:?[0-9]*\): dropped message: undecodable" \
	"agent probe\.test \($HADDR:?[0-9]*\): dropped message: $((max + 1)) bytes, more than max_message \($max\)" \
	"agent probe\.test \($HADDR:?[0-9]*\): dropped step_event: no session yet" \
	"agent probe\.test \($HADDR:?[0-9]*\): dropped step_event: job '$GOOD_JOB' belongs to domain example\.test" \
	"agent probe\.test \($HADDR:?[0-9]*\): hello from agent tuapwire-probe, new session"; do
	tuapd_saw "$W/d" "$re" || { grep probe "$W/d/tuapd.log" >&2; tuapt_die "tuapd's log lacks /$re/"; }
done
tuapd_status_ok || tuapt_die "tuapd stopped answering after the probe"
kill -0 "$TUAPD_PID" || tuapt_die "tuapd died"

# ------------------------------------------------------------------------------------------
phase wrong-key
mkdir -p "$W/rogue"
# example.test's config with a fresh keypair (Z85 keys hold sed's special characters: python)
rpub=$("$TUAPT_PY" - "$W/agent.conf" "$W/rogue/agent.conf" "$W/rogue/state" <<'EOF'
import os, sys, zmq
pub, sec = (k.decode() for k in zmq.curve_keypair())
new = {"public_key": pub, "secret_key": sec, "state_dir": sys.argv[3]}
out = []
for line in open(sys.argv[1]):
    k = line.split("=", 1)[0].strip()
    out.append("%s = %s\n" % (k, new[k]) if k in new else line)
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, "".join(out).encode())
print(pub)
EOF
)
grep -q "^domain = example.test$" "$W/rogue/agent.conf" || tuapt_die "the rogue config claims no domain"
TUAPT_BG_LOG=$W/logs/rogue.log netns_bg "$H" ROGUE "$TUAP_SHIP_AGENT" --config "$W/rogue/agent.conf" \
	--site-root "$W/rogue/site"
rogue_refused() { grep -qF "refused $rpub from $HADDR" "$W/d/tuapd.log"; }
wait_for "tuapd refusing the rogue key" 30 rogue_refused ||
	{ tail -n 10 "$W/d/tuapd.log" "$W/logs/rogue.log" >&2; exit 1; }
ctl run example.test make >"$W/run.out" 2>&1 || { cat "$W/run.out" >&2; tuapt_die "tuap-ctl run failed"; }
[ "$(grep -c . "$R$RUNS")" = 2 ] || tuapt_die "make ran $(grep -c . "$R$RUNS") times, expected 2"
kill -0 "$ROGUE" || tuapt_die "the rogue agent died: $(tail -n 5 "$W/logs/rogue.log")"
[ -z "$(ls -A "$W/rogue/state/jobs" 2>/dev/null)" ] || tuapt_die "the rogue agent got a job"
[ -z "$(ls -A "$W/rogue/site" 2>/dev/null)" ] || tuapt_die "the rogue agent got a site"
! grep -q "steps planned" "$W/logs/rogue.log" || tuapt_die "the rogue agent got a plan"
stop_pid "$ROGUE"

# ------------------------------------------------------------------------------------------
phase hostile-tarballs
"$TUAPT_PY" "$src/tests/data/make-tarballs" "$W/tarballs"
DANGEROUS="abs-path dotdot nested-dotdot symlink-abs symlink-escape symlink-then-file symlink-chain
	hardlink-abs hardlink-dotdot chardev blockdev fifo long-name control-char text gzip-not-tar
	truncated truncated-late bad-crc empty"
others=$(cd "$W/tarballs" && ls -1 ./*.tar.gz | sed 's:^\./::; s:\.tar\.gz$::' | grep -v '^good-' |
	grep -vxF -f <(printf '%s\n' $DANGEROUS))
runs_before=$(grep -c . "$R$RUNS")
cp -a "$SITE" "$W/site-before"

# changed_outside ALLOWED_RE: what was created or changed in the root since $W/stamp (inode
# change time: tar cannot set it) outside ALLOWED_RE; a newline in a name shows as '?'
changed_outside() {
	find "$R" -xdev -cnewer "$W/stamp" -printf '/%P\0' | tr '\n\0' '?\n' | grep -Ev "$1" || true
}
allowed='^/(srv/tuap|srv/tuap/.*|var/lib/tuap-agent/.*)$'

refused=0
for name in $DANGEROUS $others; do
	tgz=$W/tarballs/$name.tar.gz
	[ -f "$tgz" ] || tuapt_die "make-tarballs wrote no $name.tar.gz"
	touch "$W/stamp"
	sleep 0.01
	rc=0
	timeout 120 "$TUAPT_PY" "$WIRE" update-data "$TUAP_SOCKET" example.test "$S/provision.conf" \
		"$tgz" 90 >"$W/hostile/$name.out" 2>&1 || rc=$?
	# one event per line: a name with a newline must not forge lines (events, setup log)
	if grep -Evq '^(phase|step|error|text|final) ' "$W/hostile/$name.out"; then
		cat "$W/hostile/$name.out" >&2
		tuapt_die "$name.tar.gz: an event spans lines"
	fi
	failed=$(awk '$1 == "phase" && $3 == "failed" {print $2; exit}' "$W/hostile/$name.out")
	why=$(awk '$1 == "phase" && $3 == "failed" {$1 = $2 = $3 = ""; print; exit}' "$W/hostile/$name.out")
	if [ -z "$failed" ] && ! grep -q '^phase ' "$W/hostile/$name.out" && grep -q '^error ' "$W/hostile/$name.out"; then
		failed=request # tuapd refused it before any job started
		why=$(sed -n 's/^error [0-9]* //p' "$W/hostile/$name.out" | head -n 1)
	fi
	why=$(printf '%s' "$why" | sed 's/^ *//' | cut -c1-110)
	if [[ " $(echo $DANGEROUS) " == *" $name "* ]]; then
		if [ "$rc" != 1 ] || { [ "$failed" != data ] && [ "$failed" != request ]; }; then
			cat "$W/hostile/$name.out" >&2
			tuapt_die "$name.tar.gz: exit $rc, failed phase '$failed'; expected the data phase to fail (or tuapd to refuse the request)"
		fi
		out=$(changed_outside "$allowed")
		[ -z "$out" ] || tuapt_die "$name.tar.gz: changed outside the site tree and the agent's state: $out"
		diff -r "$W/site-before" "$SITE" >&2 || tuapt_die "$name.tar.gz: the site tree changed"
		[ "$(grep -c . "$R$RUNS")" = "$runs_before" ] || tuapt_die "$name.tar.gz: make ran"
		[ ! -e "$R/root/site-is-set-up" ] || tuapt_die "$name.tar.gz: its Makefile ran"
		leftover=$(find "$R/srv/tuap" -mindepth 1 -maxdepth 1 ! -name example.test)
		[ -z "$leftover" ] || tuapt_die "$name.tar.gz: left $leftover"
		if [ "$name" = control-char ]; then
			grep -qx "phase data failed data.tar.gz: entry 'evil?name': control character in name" \
				"$W/hostile/$name.out" || tuapt_die "the refused name is not shown without its newline"
		fi
		refused=$((refused + 1))
		printf '# refused  %-26s %-8s %s\n' "$name.tar.gz" "$failed" "$why" >&2
	else
		[ "$rc" = 0 ] || [ "$rc" = 1 ] || { cat "$W/hostile/$name.out" >&2; tuapt_die "$name.tar.gz: exit $rc"; }
		# make ran: /root/site-is-set-up (and, on an overlay, the copy-up of /root changes /)
		out=$(changed_outside '^/(|srv/tuap|srv/tuap/.*|var/lib/tuap-agent/.*|root|root/site-is-set-up)$')
		[ -z "$out" ] || tuapt_die "$name.tar.gz: changed outside the site tree and the agent's state: $out"
		printf '# harmless %-26s exit %s%s\n' "$name.tar.gz" "$rc" "${failed:+, $failed failed: $why}" >&2
	fi
done
[ "$refused" -ge 10 ] || tuapt_die "only $refused tarballs refused"
tuapd_status_ok || tuapt_die "tuapd stopped answering"

phase tuapd-stop
tuapd_stop "$TUAPD_PID" "$W/d"
phase
echo "PASS: bad agent messages dropped and answered, wrong key refused, $refused hostile tarballs refused (by the agent; the empty one by tuapd) with nothing written outside the site tree"
