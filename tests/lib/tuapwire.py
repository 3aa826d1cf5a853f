#!/usr/bin/python3
"""tuapwire.py — a deliberately small, hand-written speaker of tuap's wire (proto/tuap.proto)
for the integration tests that must send what tuap-ctl and tuap-agent never would. Needs Debian's
python3-zmq (CURVE support comes with libzmq5); protobuf is encoded by hand, so no protoc.

  tuapwire.py update-data SOCKET DOMAIN CONF TARBALL [DEADLINE]
      `tuap-ctl update-data` without tuap-ctl's local check of the tarball: sends CONF's text
      and TARBALL over tuapd's control socket, uploads it when asked, prints one line per event
      ("phase NAME STATE MESSAGE", "step NAME STATE ...", "error ...") and exits with the final
      event's exit code (99: no final event within DEADLINE seconds).

  tuapwire.py agent-probe AGENT_CONF MAX_MESSAGE OTHER_JOB [DEADLINE]
      Connects to tuapd's agent socket with the CURVE keys of AGENT_CONF (an enrolled agent) and
      misbehaves; prints one "ok: ..." line per check and exits 1 at the first surprise:
        1. a body that only tuapd may send (Plan)           -> Error NOT_ALLOWED back
        2. an unknown body type (field 60)                  -> Error NOT_ALLOWED back
        3. bytes that are no Envelope                        -> Error BAD_MESSAGE back
        4. a StepEvent before any Hello                      -> dropped (no answer)
        5. a frame of MAX_MESSAGE+1 bytes                    -> Error BAD_MESSAGE back
        6. a frame of 2*MAX_MESSAGE+1 bytes                  -> no answer (libzmq drops the
                                                                connection); a new connection
                                                                then says Hello and is answered
                                                                as in 1.
        7. after the Hello, a StepEvent for OTHER_JOB (a job of another domain)
                                                             -> Error NOT_ALLOWED back
"""
import os
import struct
import sys
import time

import zmq

WIRE_VERSION = 1

# ---- protobuf wire format, the subset tuap uses ------------------------------------------------


def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field, n):
    return varint(field << 3) + varint(n)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


def envelope(seq, body_field=None, body=b"", job_id=None, ack=None):
    out = f_varint(1, WIRE_VERSION) + f_varint(2, seq)
    if ack is not None:
        out += f_varint(3, ack)
    if job_id is not None:
        out += f_bytes(4, job_id)
    if body_field is not None:
        out += f_bytes(body_field, body)
    return out


def read_varint(b, i):
    n = shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i


def parse(b):
    """{field: [value, ...]}: ints for varints, bytes for length-delimited fields."""
    out, i = {}, 0
    while i < len(b):
        key, i = read_varint(b, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 2:
            n, i = read_varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = struct.unpack_from("<Q", b, i)[0], i + 8
        elif wt == 5:
            v, i = struct.unpack_from("<I", b, i)[0], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(field, []).append(v)
    return out


def one(d, field, default=None):
    return d[field][0] if field in d else default


def text(d, field):
    return one(d, field, b"").decode(errors="replace")


def signed(n):
    return n - (1 << 64) if n >= 1 << 63 else n


# ---- update-data over the control socket -------------------------------------------------------

PHASE_STATES = {0: "started", 1: "progress", 2: "done", 3: "failed", 4: "stalled"}
STEP_NAMES = {1: "users", 2: "packages", 3: "mail", 4: "data", 5: "make"}
STEP_STATES = {1: "started", 2: "progress", 3: "log", 4: "done", 5: "failed", 6: "interrupted"}
CHUNK = 256 * 1024


def update_data(sock_path, domain, conf_path, tarball, deadline):
    import hashlib

    conf = open(conf_path, "rb").read()
    data = open(tarball, "rb").read()
    req = (f_bytes(1, domain) + f_bytes(2, conf_path) + f_bytes(3, conf) + f_bytes(6, tarball) +
           f_varint(7, len(data)) + f_bytes(8, hashlib.sha256(data).digest()))
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect("ipc://" + sock_path)
    seq = 1
    s.send(envelope(seq, 40, f_bytes(12, req)))
    end = time.monotonic() + deadline
    code = 99
    while time.monotonic() < end:
        if not s.poll(int((end - time.monotonic()) * 1000) + 1):
            break
        env = parse(s.recv())
        if 31 in env:
            err = parse(one(env, 31))
            print("error %d %s" % (one(err, 1, 0), text(err, 2)))
            code = 1
            break
        ev = parse(one(env, 48, b""))
        if 14 in ev:  # upload request: offset, credit (bytes)
            up = parse(one(ev, 14))
            off, credit = one(up, 1, 0), one(up, 2, 0)
            stop = min(len(data), off + credit)
            while off < stop:
                n = min(CHUNK, stop - off)
                seq += 1
                s.send(envelope(seq, 41, f_bytes(1, domain) + f_varint(2, off) +
                                f_bytes(3, data[off:off + n])))
                off += n
        elif 8 in ev:
            ph = parse(one(ev, 8))
            print("phase %s %s %s" % (text(ph, 1), PHASE_STATES.get(one(ph, 2, 0), "?"),
                                      text(ph, 5)))
        elif 9 in ev:
            st = parse(one(ev, 9))
            lines = [l.decode(errors="replace") for l in st.get(5, [])]
            print("step %s %s %s %s" % (STEP_NAMES.get(one(st, 1, 0), "?"),
                                        STEP_STATES.get(one(st, 2, 0), "?"), text(st, 7),
                                        " | ".join(lines)))
        elif 10 in ev:
            er = parse(one(ev, 10))
            print("error %d %s" % (one(er, 1, 0), text(er, 2)))
        elif 13 in ev:
            for l in parse(one(ev, 13)).get(1, []):
                print("text %s" % l.decode(errors="replace"))
        if one(ev, 1, 0):
            code = signed(one(ev, 2, 0))
            print("final %d" % code)
            break
    sys.stdout.flush()
    s.close()
    ctx.term()
    return code


# ---- a misbehaving agent -----------------------------------------------------------------------

ERR_BAD_MESSAGE, ERR_NOT_ALLOWED = 2, 3


def agent_conf(path):
    conf = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            conf[k.strip()] = v.strip()
    return conf


class Probe:
    def __init__(self, conf, deadline):
        self.conf, self.deadline = conf, deadline
        self.ctx = zmq.Context()
        self.s = None

    def connect(self):
        if self.s:
            self.s.close()
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.curve_serverkey = self.conf["server_public_key"].encode()
        s.curve_publickey = self.conf["public_key"].encode()
        s.curve_secretkey = self.conf["secret_key"].encode()
        s.connect(self.conf["endpoint"])
        self.s = s

    def answer(self, timeout_s):
        """The next Error the hub answers with, as (code, message), or None."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if not self.s.poll(int((end - time.monotonic()) * 1000) + 1):
                return None
            env = parse(self.s.recv())
            if 31 in env:
                er = parse(one(env, 31))
                return one(er, 1, 0), text(er, 2)
            # acks, keepalives: not what we wait for
        return None

    def expect(self, what, frame, code):
        self.s.send(frame)
        got = self.answer(self.deadline)
        if code is None:
            if got is not None:
                sys.exit("FAIL: %s: answered %s, expected no answer" % (what, got))
            print("ok: %s: dropped without an answer" % what)
            return
        if got is None or got[0] != code:
            sys.exit("FAIL: %s: answered %s, expected Error code %d" % (what, got, code))
        print("ok: %s: Error %d (%s)" % (what, got[0], got[1]))

    def hello(self):
        h = (f_bytes(1, "tuapwire-probe") + f_bytes(2, os.urandom(16)) +
             f_bytes(4, "probe") + f_varint(12, 1) + f_varint(13, 1))
        self.s.send(envelope(0, 16, h))


def agent_probe(conf_path, max_message, other_job, deadline):
    conf = agent_conf(conf_path)
    p = Probe(conf, deadline)
    p.connect()
    plan = f_bytes(1, "x") + f_bytes(2, conf["domain"])
    p.expect("Plan from an agent", envelope(1, 24, plan), ERR_NOT_ALLOWED)
    p.expect("unknown body type 60", envelope(1, 60, b"\x08\x01"), ERR_NOT_ALLOWED)
    p.expect("garbage", b"\xff\xfe this is not an envelope", ERR_BAD_MESSAGE)
    step = f_varint(1, 5) + f_varint(2, 3) + f_bytes(5, "forged line")
    p.expect("StepEvent before a Hello", envelope(1, 17, step, job_id=other_job), None)
    # the size is checked before anything else: the content does not matter
    p.expect("frame of %d bytes" % (max_message + 1), b"x" * (max_message + 1), ERR_BAD_MESSAGE)
    p.expect("frame of %d bytes" % (2 * max_message + 1), b"x" * (2 * max_message + 1), None)
    # the old connection is gone; tuapd serves a new one
    p.connect()
    p.hello()
    p.expect("Plan after reconnecting", envelope(1, 24, plan), ERR_NOT_ALLOWED)
    p.expect("StepEvent for a job of another domain", envelope(1, 17, step, job_id=other_job),
             ERR_NOT_ALLOWED)
    p.s.close()
    p.ctx.term()
    return 0


def main():
    a = sys.argv[1:]
    if len(a) >= 4 and a[0] == "update-data":
        dl = float(a[5]) if len(a) > 5 else 60
        sys.exit(update_data(a[1], a[2], a[3], a[4], dl))
    if len(a) >= 4 and a[0] == "agent-probe":
        dl = float(a[4]) if len(a) > 4 else 5
        sys.exit(agent_probe(a[1], int(a[2]), a[3], dl))
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
