#!/usr/bin/python3
"""make-agent-seeds.py DIR — writes the seed corpus of tests/fuzz/fuzz_agent.c: frames
[length, 2 bytes big-endian][Envelope], controller -> agent, in the orders tuapd sends them: a
plan, a users step, a mail step, a data step fed a real tarball (its sha256 right) in chunks in
order, out of order and overlapping, a resend of the running data step, a cancel, and a step
request while another step runs."""
import hashlib
import io
import os
import struct
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tuapwire import envelope, f_bytes, f_varint  # noqa: E402

JOB = "20261204T120000-a1b2c3"
USERS, PACKAGES, MAIL, DATA, MAKE = 1, 2, 3, 4, 5


def frame(seq, body_field, body, job=JOB):
    env = envelope(seq, body_field, body, job_id=job)
    return struct.pack(">H", len(env)) + env


def step_request(seq, step, args_field=None, args=b"", deadline=60, attempt=1):
    b = f_varint(1, step) + f_varint(2, deadline) + f_varint(3, attempt)
    if args_field is not None:
        b += f_bytes(args_field, args)
    return frame(seq, 25, b)


def tarball():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.GNU_FORMAT) as t:
        def add(name, data=b"", kind=tarfile.REGTYPE, link=""):
            i = tarfile.TarInfo(name)
            i.type, i.linkname, i.size, i.mtime = kind, link, len(data), 1700000000
            i.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            t.addfile(i, io.BytesIO(data) if data else None)
        add("www", kind=tarfile.DIRTYPE)
        add("www/index.html", b"<h1>a.test</h1>\n" * 40)
        add("Makefile", b"all:\n\ttrue\n")
        add("www/current", kind=tarfile.SYMTYPE, link="index.html")
        add("VERSION", b"1\n")
        blob, h = b"", b"a.test"
        while len(blob) < 2048:  # incompressible: the tarball takes several chunks
            h = hashlib.sha256(h).digest()
            blob += h
        add("www/blob.bin", blob)
    return out.getvalue()


tgz = tarball()
data_args = f_varint(1, len(tgz)) + f_bytes(2, hashlib.sha256(tgz).digest()) + f_varint(3, 256)


def chunks(order, seq=10, size=256):
    return [frame(seq + i, 26, f_varint(1, off) + f_bytes(2, tgz[off:off + size]))
            for i, off in enumerate(order)]


offsets = list(range(0, len(tgz), 256))
in_order = b"".join(chunks(offsets))
half = b"".join(chunks(offsets[:len(offsets) // 2]))
reversed_ = b"".join(chunks(offsets[::-1]))
overlapping = b"".join(chunks([o - 100 if o >= 100 else o for o in offsets] + [offsets[-1]]))
plan = frame(1, 24, f_bytes(1, JOB) + f_bytes(2, "a.test") + b"".join(
    f_varint(3, s) for s in (USERS, MAIL, DATA, MAKE)))
user = (f_bytes(1, "alice") + f_bytes(2, "Alice") + f_bytes(3, "adm") + f_bytes(6, "/bin/bash") + f_bytes(7, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG4rT3vTt99Ox5kndS4HmgTrKBT8SKzhK4rhGkEVGlCI alice@a.test") +
        f_varint(8, 1))
users = step_request(2, USERS, 8, f_bytes(1, user) + f_bytes(2, f_bytes(1, "web") + f_bytes(2, "alice")))
mail = step_request(3, MAIL, 10, f_bytes(1, "webmaster@a.test"))
data = step_request(4, DATA, 11, data_args)
seeds = {
    "plan": plan,
    "users": plan + users,
    "users-sudo": step_request(1, USERS, 8, f_bytes(1, f_bytes(1, "bob") + f_bytes(5, "ALL=(ALL) NOPASSWD:ALL"))),
    "users-system": step_request(1, USERS, 8, f_bytes(1, f_bytes(1, "svc") + f_varint(12, 1) + f_varint(13, 1))),
    "mail": mail,
    "data-in-order": step_request(1, DATA, 11, data_args) + in_order,
    "data-reversed": step_request(1, DATA, 11, data_args) + reversed_,
    "data-overlapping": step_request(1, DATA, 11, data_args) + overlapping,
    "data-resent": step_request(1, DATA, 11, data_args) + half +
    step_request(50, DATA, 11, data_args, attempt=2) + in_order,
    "data-cancel": step_request(1, DATA, 11, data_args) + half + frame(60, 27, f_bytes(1, "operator")),
    "data-then-users": data + in_order + step_request(70, USERS, 8, f_bytes(1, user)),
    "busy": step_request(1, DATA, 11, data_args) + users,
    "error": frame(0, 31, f_varint(1, 3) + f_bytes(2, "not allowed")),
    "all": plan + users + mail + data + in_order,
}
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, blob in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(blob)
print("%d seeds in %s" % (len(seeds), out))
