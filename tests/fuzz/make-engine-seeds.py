#!/usr/bin/python3
"""make-engine-seeds.py DIR — writes the seed corpus of tests/fuzz/fuzz_engine.c: frames
[kind][length, 2 bytes big-endian][Envelope], kind 0 from tuap-ctl, 1 from a.test's agent, in
the orders a real provision takes (enroll, provision --existing, hello, each step's events, the
data chunks asked for), and a few requests alone. The job id "JOB" stands for a.test's current
job (the harness puts the real one in)."""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tuapwire import envelope, f_bytes, f_varint  # noqa: E402

CONF = b"ips=192.0.2.10/24\ngateway=192.0.2.1\npackages=nginx\ncontact_email=w@a.test\n"
USERS = b"users:\n  - name: alice\n    groups: [adm]\n"


def frame(kind, env):
    return bytes([kind]) + struct.pack(">H", len(env)) + env


def ctl(req_field, body):
    return frame(0, envelope(1, 40, f_bytes(req_field, body)))


def agent(seq, body_field, body, job="JOB"):
    return frame(1, envelope(seq, body_field, body, job_id=job))


def hello(steps=b""):
    return frame(1, envelope(0, 16, f_bytes(1, "0.2.0") + f_bytes(2, b"s" * 16) +
                             f_bytes(4, "a") + f_bytes(5, "debian") + f_bytes(7, "apt") +
                             f_varint(13, 1) + steps))


def step(seq, step, state, lines=(), code=None, msg=None):
    b = f_varint(1, step) + f_varint(2, state)
    for l in lines:
        b += f_bytes(5, l)
    if code is not None:
        b += f_varint(6, code)
    if msg:
        b += f_bytes(7, msg)
    return agent(seq, 17, b)


enroll = ctl(5, f_bytes(1, "a.test"))
provision = ctl(1, f_bytes(1, "a.test") + f_bytes(2, "a.test/provision.conf") + f_bytes(3, CONF) +
                f_bytes(4, "a.test/users.yaml") + f_bytes(5, USERS) + f_varint(11, 1) +
                f_varint(13, 1))
with_data = ctl(1, f_bytes(1, "a.test") + f_bytes(2, "a.test/provision.conf") + f_bytes(3, CONF) +
                f_bytes(6, "a.test/data.tar.gz") + f_varint(7, 20) + f_bytes(8, b"\x11" * 32) +
                f_varint(11, 1) + f_varint(13, 1))
upload = frame(0, envelope(1, 41, f_bytes(1, "a.test") + f_varint(2, 0) + f_bytes(3, b"x" * 20)))
steps = []
seq = 1
for s in (1, 2, 3, 4, 5):
    steps.append(step(seq, s, 1))
    seq += 1
    if s == 5:
        steps.append(step(seq, s, 3, lines=("make: all", "done")))
        seq += 1
    steps.append(step(seq, s, 4))
    seq += 1
seeds = {
    "provision-existing": enroll + provision + hello() + b"".join(steps),
    "provision-fails": enroll + provision + hello() + step(1, 1, 1) + step(2, 1, 5, code=1, msg="no"),
    "provision-data": enroll + with_data + upload + hello() + agent(1, 18, f_varint(1, 0) + f_varint(2, 2)),
    "status-list": ctl(2, f_bytes(1, "a.test")) + ctl(9, b"") + ctl(13, b""),
    "run-destroy": enroll + ctl(11, f_bytes(1, "a.test") + f_bytes(2, "all")) + ctl(6, f_bytes(1, "a.test") + f_varint(2, 1)),
    "hello-alone": hello(),
}
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("%d seeds in %s" % (len(seeds), out))
