#!/bin/bash
# tuapd under systemd, without systemd (this machine's PID 1 is not systemd): the two sockets
# systemd gives a Type=notify service are played by listeners of the test.
#   - sd_notify: READY=1 comes once the sockets are bound and the journaled jobs resumed: the
#     listener, at READY, asks `tuap-ctl status` and must see the job a first tuapd left
#     waiting for its agent, resumed; STOPPING=1 comes at SIGTERM.
#   - journald: with JOURNAL_STREAM set, tuapd writes journald's native protocol to
#     /run/systemd/journal/socket (here a listener bind-mounted over /run/systemd in the private
#     mount namespace of `ip netns exec`): each job line has the fields DOMAIN, JOB and PHASE,
#     PRIORITY and SYSLOG_IDENTIFIER=tuapd, and nothing of it goes to stderr.
# Exits 77 when not root or without netns support.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/tuap.sh"

skip_unless_root
skip_unless_netns
skip_unless_cmd python3
tuap_need_bins
[ -d /run/systemd ] || tuapt_skip "no /run/systemd to stand a journal socket in"
CADDR=198.51.100.1
tmpdir_new W
mkdir -p "$W/logs" "$W/fakerun/journal"
TUAPT_LOGDIR=$W/logs

# listen.py SOCKET OUT [CMD...]: one AF_UNIX datagram listener; every datagram is appended to
# OUT (NUL-separated); with CMD, the first datagram holding READY=1 runs CMD into OUT.ready.
cat >"$W/listen.py" <<'PY'
import os, socket, subprocess, sys, time
path, out, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o777)
s.settimeout(60)
end = time.time() + 60
with open(out, "ab", buffering=0) as f:
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        f.write(d + b"\0")
        if cmd and b"READY=1" in d.split(b"\n"):
            r = subprocess.run(cmd, capture_output=True, timeout=20)
            open(out + ".ready", "wb").write(r.stdout + r.stderr)
            cmd = None
PY

phase first-tuapd
netns_new C ctl
ip -n "$C" addr add "$CADDR/32" dev lo
tuapd_conf "$W/d" "$CADDR"
site_copy "$W/site"
tuapd_start "$C" "$W/d" P
ctl enroll example.test -o "$W/agent.conf" >/dev/null
# a job that waits for an agent which never comes; tuapd stops: the job is in its journal
ctl provision --existing --detach "$W/site/example.test" >/dev/null
# (while tuapd runs: the bash completion offers the domains it knows, asked of it)
mkdir -p "$W/bin" && ln -sf "$TUAP_CTL" "$W/bin/tuap-ctl"
"$TUAP_CTL" completion bash >"$W/completion.bash"
got=$(cd "$W" && PATH=$W/bin:$PATH bash -c '. ./completion.bash
	COMP_WORDS=(tuap-ctl status ex); COMP_CWORD=2; _tuap_ctl; printf "%s\n" "${COMPREPLY[@]}"')
[ "$got" = example.test ] || tuapt_die "completion of 'status ex': '$got'"
got=$(cd "$W" && PATH=$W/bin:$PATH bash -c '. ./completion.bash
	COMP_WORDS=(tuap-ctl log -n 5 ""); COMP_CWORD=4; _tuap_ctl; printf "%s\n" "${COMPREPLY[@]}"')
[ "$got" = example.test ] || tuapt_die "completion of 'log -n 5': '$got'"
wait_for "the job waiting for hello" 20 tuapd_saw "$W/d" ": hello started"
tuapd_stop "$P" "$W/d"

phase notify
NOTIFY=$W/notify.sock
netns_bg "$C" L python3 "$W/listen.py" "$NOTIFY" "$W/notify.out" \
	env TUAP_SOCKET="$W/d/run/ctl.sock" "$TUAP_CTL" status example.test
wait_for "the notify listener" 10 test -S "$NOTIFY"
TUAPT_BG_LOG=$W/d/tuapd.log netns_bg "$C" P env NOTIFY_SOCKET="$NOTIFY" "$TUAPD" -c "$W/d/tuapd.conf"
wait_for "READY=1 from tuapd" 30 test -s "$W/notify.out.ready" ||
	{ tail -n 20 "$W/d/tuapd.log" >&2; tuapt_die "no READY=1"; }
tr '\0' '\n' <"$W/notify.out" | grep -q '^STATUS=agents on tcp://' || tuapt_die "no STATUS with READY"
# at READY the control socket answers and the journaled job is back, waiting for its agent
grep -q "example.test" "$W/notify.out.ready" || tuapt_die "status at READY: $(cat "$W/notify.out.ready")"
grep -q -i "hello" "$W/notify.out.ready" ||
	tuapt_die "the journaled job was not resumed at READY: $(cat "$W/notify.out.ready")"
tuapd_stop "$P" "$W/d"
wait_for "STOPPING=1" 10 grep -q "STOPPING=1" "$W/notify.out"
stop_pid "$L"

phase journal
# journald's socket, in tuapd's own mount namespace only
netns_bg "$C" J python3 "$W/listen.py" "$W/fakerun/journal/socket" "$W/journal.out"
wait_for "the journal listener" 10 test -S "$W/fakerun/journal/socket"
: >"$W/d/journal-stderr.log"
TUAPT_BG_LOG=$W/d/journal-stderr.log netns_bg "$C" P sh -c \
	'mount --bind "$1" /run/systemd && exec env JOURNAL_STREAM=8:1 "$2" -c "$3"' _ \
	"$W/fakerun" "$TUAPD" "$W/d/tuapd.conf"
wait_for "tuapd answering" 20 tuapd_status_ok
ctl status example.test >/dev/null
wait_for "a job line in the journal" 20 grep -q "DOMAIN=example.test" "$W/journal.out"
stop_pid "$P"
stop_pid "$J"
python3 - "$W/journal.out" <<'PY' || tuapt_die "journal entries: $(tr '\0' '\n' <"$W/journal.out" | head -40)"
import sys
entries = [dict(l.split("=", 1) for l in e.split("\n") if "=" in l)
           for e in open(sys.argv[1], encoding="utf-8").read().split("\0") if e]
assert entries, "no entry"
for e in entries:
    assert e.get("SYSLOG_IDENTIFIER") == "tuapd", e
    assert e.get("PRIORITY") in ("3", "4", "6", "7"), e
    assert e.get("MESSAGE"), e
job = [e for e in entries if e.get("DOMAIN") == "example.test" and e.get("JOB")]
assert job, "no entry with DOMAIN and JOB"
assert any(e.get("PHASE") for e in job), "no entry with PHASE"
print("journal: %d entries, %d with DOMAIN/JOB, phases %s" % (
    len(entries), len(job), sorted({e["PHASE"] for e in job if "PHASE" in e})))
PY
# journald took the lines: stderr holds none of them
! grep -q "example.test" "$W/d/journal-stderr.log" || tuapt_die "lines went to stderr too"
tuapd_log_clean "$W/d/journal-stderr.log"
echo "PASS: READY=1 after bind and resume, STOPPING=1, journald fields DOMAIN/JOB/PHASE"
