#!/bin/bash
# tuapd outlives a flood of connections that never speak (issue 17.1: ~1,100 bare TCP
# connections to agent_listen held fds until the handshake timeout, and at the fd limit the
# next tuap-ctl connection hit libzmq 4.3.4's "Too many open files" assert in its ipc listener
# and tuapd aborted). tuapd runs with an fd limit of 1024 and twice that many bare connections
# are opened to the agent port and held: tuap-ctl status must keep answering during the flood,
# tuapd must stop accepting while fds are short and listen again after, every held connection
# must be cut, and tuapd must be alive at the end. No key is needed for any of it: that is the
# point. And a tuap-ctl request over the message limit is answered, not cut silently. Exits 77 when not root or without netns support.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/tuap.sh"

skip_unless_root
skip_unless_netns
skip_unless_cmd prlimit
tuap_need_bins
CADDR=198.51.100.1
LIMIT=1024
FLOOD=$((2 * LIMIT))
tmpdir_new W
mkdir -p "$W/logs"
TUAPT_LOGDIR=$W/logs

phase tuapd
netns_new C ctl
ip -n "$C" addr add "$CADDR/32" dev lo
tuapd_conf "$W/d" "$CADDR"
# soft and hard: tuapd cannot raise it (prlimit execs tuapd: the PID is tuapd's)
printf '#!/bin/sh\nexec prlimit --nofile=%d:%d -- %s "$@"\n' $LIMIT $LIMIT "$TUAPD" >"$W/tuapd"
chmod +x "$W/tuapd"
TUAPD=$W/tuapd tuapd_start "$C" "$W/d" TUAPD_PID

phase flood
# One process holds FLOOD bare connections (its own fd limit raised) until told to stop.
cat >"$W/flood.py" <<'PY'
import socket, sys, time
addr, port, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks, refused = [], 0
for i in range(n):
    s = socket.socket()
    s.settimeout(0.3)
    try:
        s.connect((addr, port))
        socks.append(s)
    except OSError:
        refused += 1
print("opened", len(socks), "refused", refused, flush=True)
end = time.time() + hold
while time.time() < end:
    time.sleep(0.5)
# how many did tuapd close on us meanwhile (recv returns b'' or fails)
closed = 0
for s in socks:  # zmq's greeting may be waiting before the end of the stream
    s.setblocking(False)
    try:
        while True:
            if s.recv(4096) == b"":
                closed += 1
                break
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print("closed-by-tuapd", closed, flush=True)
PY
HOLD=20 # 4 handshake deadlines
ip netns exec "$C" prlimit --nofile=$((FLOOD + 64)) -- python3 "$W/flood.py" "$CADDR" "$TUAPT_AGENT_PORT" "$FLOOD" "$HOLD" \
	>"$W/flood.out" 2>&1 &
FLOOD_PID=$!
pid_record "$FLOOD_PID"
wait_for "the flood's connections" 120 grep -q "^opened" "$W/flood.out"
cat "$W/flood.out" >&2
# during the flood: tuap-ctl is answered, again and again
for i in 1 2 3 4 5; do
	ctl status >/dev/null 2>"$W/status.err" || tuapt_die "tuap-ctl status during the flood: $(cat "$W/status.err")"
	kill -0 "$TUAPD_PID" 2>/dev/null || tuapt_die "tuapd died during the flood: $(tail -n 5 "$W/d/tuapd.log")"
	sleep 1
done
wait "$FLOOD_PID" || true
cat "$W/flood.out" >&2

phase after
kill -0 "$TUAPD_PID" 2>/dev/null || tuapt_die "tuapd died: $(tail -n 5 "$W/d/tuapd.log")"
ctl status >/dev/null || tuapt_die "tuap-ctl status after the flood"
opened=$(awk '/^opened/ {print $2}' "$W/flood.out")
closed=$(awk '/^closed-by-tuapd/ {print $2}' "$W/flood.out")
[ "${closed:-0}" -ge "${opened:-1}" ] ||
	tuapt_die "tuapd still holds $((opened - closed)) of $opened silent connections after ${HOLD}s"
grep -q "not accepting new connections" "$W/d/tuapd.log" || tuapt_die "tuapd never stopped accepting"
grep -q "listening on .* again" "$W/d/tuapd.log" || tuapt_die "tuapd never listened again"
[ "$(grep -c "failed handshake\|handshake failed" "$W/d/tuapd.log")" -lt 50 ] ||
	tuapt_die "tuapd logged every failed handshake: $(grep -c handshake "$W/d/tuapd.log") lines"
# and a connection after the flood is accepted again (then cut, having said nothing)
ip netns exec "$C" python3 -c 'import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)' \
	"$CADDR" "$TUAPT_AGENT_PORT" || tuapt_die "the agent port does not accept after the flood"
phase oversized-request
# a request over the message limit gets an answer, not a silent cut (17.7)
"$TUAPT_PY" - "$TUAP_SOCKET" <<'PY' >"$W/big.out" 2>&1 || tuapt_die "oversized request: $(cat "$W/big.out")"
import sys, zmq
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect("ipc://" + sys.argv[1])
s.send(b"\x08" * (1024 * 1024 + 4096 + 1))
if not s.poll(10000):
    sys.exit("no answer within 10 s")
reply = s.recv()
assert b"request refused" in reply and b"exceeds the limit" in reply, reply[:200]
print("answered:", len(reply), "bytes")
PY
cat "$W/big.out" >&2
kill -0 "$TUAPD_PID" 2>/dev/null || tuapt_die "tuapd died on an oversized request"
tuapd_stop "$TUAPD_PID" "$W/d"
echo "ok: $opened of $FLOOD silent connections accepted (tuapd fd limit $LIMIT), all cut, tuap-ctl answered throughout"
