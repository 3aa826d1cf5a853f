#!/usr/bin/python3
"""Hostile peers against a running tuapd (issue 13, item 3), for tests/stress/hostile.sh.

usage: hostile.py attack AGENT_CONF OTHER_JOB MAX_MESSAGE SECONDS SOCKETS OUT_JSON

For SECONDS, SOCKETS DEALER connections with the CURVE keys of AGENT_CONF (an enrolled agent of
domain A) send, round-robin, every kind of message an agent must not send or may not send yet:
a Plan, a StepRequest, a DataChunk, a CtlRequest (bodies of the other directions), an unknown
body type, bytes that are no Envelope, a StepEvent and a ChunkRequest before any Hello, after a
Hello a StepEvent and a ChunkRequest for OTHER_JOB (a job of domain B), a ChunkRequest outside
any tarball, a replayed sequence number, a frame of MAX_MESSAGE+1 bytes; and connections with
keys tuapd does not know try a Hello. OUT_JSON gets the attempts per kind and the answers seen
(Error codes; a dropped message gets none). It never waits for an answer before sending the
next: a flood, bounded by SECONDS.
"""
import json
import os
import sys
import time

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import tuapwire as w  # noqa: E402


def frames(other_job, max_message):
    step = w.f_varint(1, 5) + w.f_varint(2, 3) + w.f_bytes(5, "forged line")
    chunk = w.f_varint(1, 0) + w.f_varint(2, 65536)
    far = w.f_varint(1, 1 << 50) + w.f_varint(2, 1 << 31)
    return [
        ("plan (controller->agent body)", w.envelope(1, 24, w.f_bytes(1, "x") + w.f_bytes(2, "b.test"))),
        ("step request (controller->agent)", w.envelope(1, 25, w.f_varint(1, 5))),
        ("data chunk (controller->agent)", w.envelope(1, 26, w.f_varint(1, 0) + w.f_bytes(2, b"x" * 64))),
        ("ctl request (ctl->controller)", w.envelope(1, 40, w.f_bytes(1, "x"))),
        ("unknown body type 60", w.envelope(1, 60, b"\x08\x01")),
        ("garbage", os.urandom(64)),
        ("step event before hello", w.envelope(1, 17, step, job_id=other_job)),
        ("chunk request before hello", w.envelope(1, 18, chunk, job_id=other_job)),
        ("oversized frame", b"x" * (max_message + 1)),
    ], [
        ("step event for domain B's job", w.envelope(2, 17, step, job_id=other_job)),
        ("chunk request for domain B's job", w.envelope(3, 18, chunk, job_id=other_job)),
        ("chunk request outside any tarball", w.envelope(4, 18, far, job_id="20260101T000000-000000")),
        ("replayed sequence number", w.envelope(2, 17, step, job_id=other_job)),
    ]


def attack(conf_path, other_job, max_message, seconds, nsock, out):
    conf = w.agent_conf(conf_path)
    ctx = zmq.Context()
    before, after = frames(other_job, int(max_message))
    attempts, answers = {}, {}
    socks = []

    def open_sock(pub, sec):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 1000)
        s.curve_serverkey = conf["server_public_key"].encode()
        s.curve_publickey, s.curve_secretkey = pub, sec
        s.connect(conf["endpoint"])
        return s

    for i in range(int(nsock)):
        socks.append(open_sock(conf["public_key"].encode(), conf["secret_key"].encode()))
    end = time.monotonic() + float(seconds)
    hello = (w.f_bytes(1, "hostile") + w.f_bytes(2, os.urandom(16)) + w.f_varint(12, 1) +
             w.f_varint(13, 1))
    n = 0
    while time.monotonic() < end:
        for s in socks:
            for name, f in before:
                try:
                    s.send(f, zmq.NOBLOCK)
                    attempts[name] = attempts.get(name, 0) + 1
                except zmq.Again:
                    pass
            try:
                s.send(w.envelope(0, 16, hello), zmq.NOBLOCK)
                for name, f in after:
                    s.send(f, zmq.NOBLOCK)
                    attempts[name] = attempts.get(name, 0) + 1
            except zmq.Again:
                pass
            while s.poll(0):
                env = w.parse(s.recv())
                if 31 in env:
                    code = w.one(w.parse(w.one(env, 31)), 1, 0)
                    answers[code] = answers.get(code, 0) + 1
        n += 1
        if n % 20 == 0:
            # a key tuapd does not know: the CURVE handshake fails, nothing gets through
            pub, sec = zmq.curve_keypair()
            s = open_sock(pub, sec)
            s.send(w.envelope(0, 16, hello))
            attempts["unknown key"] = attempts.get("unknown key", 0) + 1
            if s.poll(50):
                answers["answered an unknown key"] = answers.get("answered an unknown key", 0) + 1
            s.close()
        # the oversized frame makes libzmq drop the connection: open it again
        if n % 5 == 0:
            for i, s in enumerate(socks):
                s.close()
                socks[i] = open_sock(conf["public_key"].encode(), conf["secret_key"].encode())
    for s in socks:
        s.close()
    ctx.term()
    json.dump({"attempts": attempts, "answers": {str(k): v for k, v in answers.items()},
               "rounds": n}, open(out, "w"), indent=1)
    return 0


def main():
    a = sys.argv[1:]
    if len(a) == 7 and a[0] == "attack":
        sys.exit(attack(*a[1:]))
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
