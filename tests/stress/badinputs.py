#!/usr/bin/python3
"""Bad inputs (issue 13, item 4): a generated corpus of broken sites, each given to
`tuap-ctl validate`, which must refuse it naming the file (and the line, where the file has
lines), change nothing in the site, stay within its memory bound and finish in time.

usage: badinputs.py [--quick] [--seed N] [--json FILE] CTL WORKDIR

The corpus (deterministic for a seed): the hand-written cases of tests/data/bad (each with its
expected first error), the tarballs of tests/data/make-tarballs (expect.txt), and generated
ones: every provision.conf key with values it must refuse, at a random line among good ones;
syntax errors, NUL bytes, bad UTF-8 and over-long lines; users.yaml with bad names, ids,
types, YAML syntax errors, alias bombs and deep nesting; data.tar.gz truncated and corrupted at
random offsets, not gzip, gzip of something else. Heavy but legal inputs (a gzip bomb of
zeros, 100k entries, a deep tree) must be accepted or refused within the same memory bound.
Prints the figures; exit 1 when any case breaks the rules.
"""
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
GOOD_CONF = [
    "ips=192.0.2.10/24",
    "gateway=192.0.2.1",
    "resolvers=192.0.2.53",
    "size=10G",
    "memory=1024",
    "cpus=2",
    "packages=nginx",
    "contact_email=webmaster@example.test",
]
GOOD_USERS = """users:
  - name: site-admin
    gecos: Site administrator
    groups: [adm, www-data]
    shell: /bin/bash
    sudo: ALL=(ALL) NOPASSWD:ALL
"""
MAKEFILE = b"all:\n\ttrue\n"
# Values each key must refuse (provision.conf(5)).
BAD_VALUES = {
    "ips": ["999.1.1.1/24", "192.0.2.10/33", "192.0.2.10/", "fe80::zz/64", "192.0.2", "a.b.c.d",
            "192.0.2.10/24 192.0.2.11/24;", "0x7f.0.0.1", "-1.0.0.0/8", "192.0.2.010/24"],
    "gateway": ["192.0.2.256", "gw", "192.0.2.1/24", "::g", "1.2.3"],
    "resolvers": ["1.2.3", "dns.example", "192.0.2.53:53", "256.0.0.1"],
    "size": ["10Q", "-1", "0", "1.5.G", "G", "99999999T", "10 G G", "0x10G"],
    "memory": ["abc", "0", "-5", "99999999999", "1e3", "12MiBs"],
    "cpus": ["0", "-1", "1000", "two", "2.5", "257"],
    "packages": ["nginx;rm", "a b", "$(reboot)", "-oDpkg::Pre-Invoke=x", "nginx/bookworm",
                 "ngi`x`", "../x", "nginx|curl"],
    "contact_email": ["x@", "@x.test", "a@@b.test", "a b@x.test", "a@x..test", "a@x_y.test",
                      "<a@x.test>"],
    "depends_on": ["bad host", "-x.test", "x..test", "host_1.test", "a" * 300 + ".test"],
    "admin_user": ["Root", "ro:ot", "-x", "a b", "x" * 40, "1abc"],
    "image": ["../../etc/passwd", "ftp://x/y.qcow2", "sub/dir.qcow2"],
}
# users.yaml entries a user (two-space list item under users:) must not be.
BAD_USERS = [
    "  - name: a b", "  - name: -x", "  - name: root:x", "  - name: " + "u" * 300,
    "  - name: Ab", "  - name: ''", "  - name: [a, b]", "  - name: {a: b}",
    "  - name: ok\n    uid: -5", "  - name: ok\n    uid: abc", "  - name: ok\n    uid: 99999999999",
    "  - name: ok\n    groups: {a: {b: c}}", "  - name: ok\n    groups: 'a b'",
    "  - name: ok\n    shell: bin/bash", "  - name: ok\n    homedir: relative",
    "  - name: ok\n    sudo: {a: b}", "  - name: ok\n    sudo: \"ALL=(ALL) ALL\\nDefaults !x\"",
    "  - name: ok\n    expiredate: 2026-13-45", "  - name: ok\n    inactive: -9",
    "  - name: ok\n    lock_passwd: maybe", "  - name: ok\n    system: 3",
    "  - name: ok\n    ssh_authorized_keys: {a: b}", "  - name: ok\n    ssh_import_id: [xx:foo]",
    "  - name: ok\n    nosuchkey: 1", "  - name: ok\n    primary_group: 'a:b'",
    "  - name: ok\n    passwd: [1]", "  - name: ok\n    snapuser: x@y\n    name: dup",
]
YAML_SYNTAX = [
    "users:\n  - name: [a\n", "users:\n\t- name: a\n", "users:\n  - name: 'a\n",
    "users:\n  - name: a\n   bad: indent\n", "users: [\n", "users:\n  - name: a\n  - : b\n",
    "users:\n  - name: &x a\n  - name: *y\n", "%YAML 9.9\n---\nusers: []\n",
    "users:\n  - name: a\n...\n---\nusers: []\n", "users: !!binary AAAA\n",
    "\x00users: []\n", "users:\n  - name: \xff\xfe\n", "users: 5\n", "users: a\n",
"users:\n  - 5\n", "users:\n  - [a]\n", "groups: 5\nusers: []\n",
]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape"))


def tar_gz(members):
    """members: [(name, bytes)]; a deterministic .tar.gz."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 1700000000, 0o644
            t.addfile(ti, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), 6, mtime=0)


class Corpus:
    def __init__(self, root, rng):
        self.root, self.rng, self.cases = root, rng, []

    def add(self, kind, files, bad, line=None, expect=None, heavy=False):
        """files: {name: bytes/str}; bad: the file the error must name; line: its line or
        None (no line: a missing key, a binary file); expect: the exact first error text after
        'SITE/'; heavy: legal but big (accepted or refused, both fine)."""
        n = len(self.cases)
        # every site is example.test (rules such as depends_on_self name it), one per case dir
        site = os.path.join(self.root, "c%04d" % n, "example.test")
        base = {"provision.conf": "\n".join(GOOD_CONF) + "\n", "users.yaml": GOOD_USERS}
        base.update(files)
        for name, data in base.items():
            if data is not None:
                write(os.path.join(site, name), data)
        self.cases.append({"kind": kind, "site": site, "bad": bad, "line": line,
                           "expect": expect, "heavy": heavy})

    def conf_with(self, line_text, first=0):
        """The good lines with line_text at a random position from index first on; returns
        (text, its line)."""
        lines = list(GOOD_CONF)
        key = line_text.split("=", 1)[0]
        lines = [l for l in lines if not l.startswith(key + "=")]
        at = self.rng.randrange(first, len(lines) + 1)
        lines.insert(at, line_text)
        return "\n".join(lines) + "\n", at + 1


def gen_hand(c):
    for sub, fname in (("conf", "provision.conf"), ("users", "users.yaml")):
        d = os.path.join(SRC, "tests/data/bad", sub)
        for f in sorted(os.listdir(d)):
            if f.endswith(".expect"):
                continue
            exp_path = os.path.join(d, os.path.splitext(f)[0] + ".expect")
            if not os.path.exists(exp_path):
                continue
            expect = open(exp_path, encoding="utf-8").read().splitlines()[0]
            m = re.match(r"^(provision\.conf|users\.yaml)(?::(\d+))?: ", expect)
            if not m or m.group(1) != fname:
                continue  # an expectation of the parser's own, not of validate's first line
            # the unit tests check the exact text; here: refused, naming the file
            c.add("hand-" + sub, {fname: open(os.path.join(d, f), "rb").read()}, fname)


def gen_conf(c, quick):
    for key, vals in BAD_VALUES.items():
        for v in vals:
            text, line = c.conf_with("%s=%s" % (key, v))
            c.add("conf-value", {"provision.conf": text}, "provision.conf", line)
    rng = c.rng
    for i in range(120):
        junk = "".join(rng.choice("abcdefghij KLMNOP-_.:/%!") for _ in range(rng.randrange(1, 40)))
        junk = junk.replace("=", "").strip() or "x"
        if junk.startswith("["):
            junk = "x" + junk
        # not on line 1, which decides the file's syntax (key=value, INI or "key value")
        text, line = c.conf_with(junk, first=1)
        c.add("conf-syntax", {"provision.conf": text}, "provision.conf", line)
    for i in range(60):
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randrange(3, 16)))
        if name in BAD_VALUES or name in ("hypervisor", "dhcp", "default"):
            name += "_x"
        text, line = c.conf_with("%s=1" % name)
        c.add("conf-unknown-key", {"provision.conf": text}, "provision.conf", line)
    for key in ("contact_email", "image", "admin_user", "depends_on", "packages"):
        text, line = c.conf_with("%s=a\x00b" % key)
        c.add("conf-nul", {"provision.conf": text}, "provision.conf", line)
        text, line = c.conf_with("%s=\udcff\udcfe" % key)
        c.add("conf-utf8", {"provision.conf": text}, "provision.conf", line)
        text, line = c.conf_with("%s=%s" % (key, "a" * (100 << 10)))
        c.add("conf-long", {"provision.conf": text}, "provision.conf", line)
    text, line = c.conf_with("image=/%s" % ("a" * (2 << 20)))
    c.add("conf-huge", {"provision.conf": text}, "provision.conf", None)
    c.add("conf-binary", {"provision.conf": bytes(rng.randrange(256) for _ in range(4096))},
          "provision.conf", None)
    text, line = c.conf_with("[nosuchblock]")
    c.add("conf-block", {"provision.conf": text + "size=1G\n"}, "provision.conf", None)


def gen_users(c, quick):
    rng = c.rng
    for entry in BAD_USERS:
        c.add("users-entry", {"users.yaml": "users:\n" + entry + "\n"}, "users.yaml", None)
        # the same, after good users
        c.add("users-entry", {"users.yaml": GOOD_USERS + entry + "\n"}, "users.yaml", None)
    for text in YAML_SYNTAX:
        c.add("users-syntax", {"users.yaml": text}, "users.yaml", None)
    for i in range(100):
        # a random bad name among good users
        name = "".join(rng.choice("ABC:;/ @!$*") for _ in range(rng.randrange(1, 8)))
        body = GOOD_USERS + "  - name: '%s'\n" % name.replace("'", "")
        c.add("users-name", {"users.yaml": body}, "users.yaml", None)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for k in range(1, 12):
        bomb += "%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n" % (
            (chr(97 + k),) * 2 + (chr(96 + k),) * 9)
    c.add("users-bomb", {"users.yaml": bomb + "users: *l\n"}, "users.yaml", None)
    c.add("users-deep", {"users.yaml": "users: " + "[" * 100000 + "]" * 100000 + "\n"},
          "users.yaml", None)
    c.add("users-deep-map", {"users.yaml": "users:\n" + "".join(
        "  " * i + "- a:\n" for i in range(1, 3000))}, "users.yaml", None)
    c.add("users-huge", {"users.yaml": "users:\n" + "".join(
        "  - name: u%d\n    gecos: %s\n" % (i, "g" * 200) for i in range(60000))},
        "users.yaml", None, heavy=True)


def gen_tarballs(c, quick, work):
    rng = c.rng
    good = tar_gz([("Makefile", MAKEFILE)] + [("site/f%03d.html" % i, os.urandom(200) * 20)
                                               for i in range(40)])
    cuts = sorted(rng.sample(range(10, len(good) - 8), 80))
    for cut in cuts:
        c.add("tar-truncated", {"data.tar.gz": good[:cut]}, "data.tar.gz", None)
    for i in range(80):
        b = bytearray(good)
        at = rng.randrange(10, len(b) - 8)
        b[at] ^= 1 << rng.randrange(8)
        c.add("tar-corrupt", {"data.tar.gz": bytes(b)}, "data.tar.gz", None)
    c.add("tar-not-gzip", {"data.tar.gz": b"PK\x03\x04" + os.urandom(1000)}, "data.tar.gz", None)
    c.add("tar-gzip-of-text", {"data.tar.gz": gzip.compress(b"hello\n" * 1000, mtime=0)},
          "data.tar.gz", None)
    c.add("tar-empty", {"data.tar.gz": b""}, "data.tar.gz", None)
    c.add("tar-no-makefile", {"data.tar.gz": tar_gz([("index.html", b"x")])}, "data.tar.gz", None)
    # the hostile and odd tarballs tuap's own tests use, with their expected first errors
    mt = os.path.join(work, "make-tarballs")
    subprocess.run([sys.executable, os.path.join(SRC, "tests/data/make-tarballs"), mt],
                   check=True, stdout=subprocess.DEVNULL)
    for line in open(os.path.join(mt, "expect.txt"), encoding="utf-8"):
        f, exp = line.rstrip("\n").split("\t", 1)
        if exp == "OK":
            continue
        c.add("tar-hostile", {"data.tar.gz": open(os.path.join(mt, f), "rb").read()},
              "data.tar.gz", None, "data.tar.gz: " + exp.split(": ", 1)[1] if exp.startswith(f + ": ") else None)
    # heavy but legal: a gzip bomb of zeros, many entries, a deep tree
    zeros = 1 << (28 if quick else 32)  # 256 MiB / 4 GiB of zeros in one file
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        ti = tarfile.TarInfo("Makefile")
        ti.size = len(MAKEFILE)
        t.addfile(ti, io.BytesIO(MAKEFILE))
    bomb_path = os.path.join(work, "bomb.tar.gz")
    with open(bomb_path, "wb") as out:
        gz = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0)
        gz.write(raw.getvalue()[:-1024])  # without the end-of-archive blocks
        hdr = tarfile.TarInfo("zeros.bin")
        hdr.size = zeros
        gz.write(hdr.tobuf(format=tarfile.GNU_FORMAT))
        chunk = bytes(1 << 20)
        for _ in range(zeros >> 20):
            gz.write(chunk)
        gz.write(bytes(1024))
        gz.close()
    c.add("tar-bomb", {"data.tar.gz": open(bomb_path, "rb").read()}, "data.tar.gz", None, heavy=True)
    n = 20000 if quick else 100000
    c.add("tar-many", {"data.tar.gz": tar_gz([("Makefile", MAKEFILE)] + [
        ("d%03d/f%06d" % (i % 500, i), b"") for i in range(n)])}, "data.tar.gz", None, heavy=True)
    deep = "/".join("d%d" % i for i in range(1000))  # 3.8k characters: below the 4096 limit
    c.add("tar-deep", {"data.tar.gz": tar_gz([("Makefile", MAKEFILE), (deep + "/f", b"x")])},
          "data.tar.gz", None, heavy=True)
    deeper = "/".join("d%d" % i for i in range(2000))  # over TARBALL_MAX_PATH
    c.add("tar-too-deep", {"data.tar.gz": tar_gz([("Makefile", MAKEFILE), (deeper + "/f", b"x")])},
          "data.tar.gz", None)


def snapshot(site):
    out = {}
    for dp, dn, fn in os.walk(site):
        for f in fn:
            p = os.path.join(dp, f)
            st = os.lstat(p)
            out[os.path.relpath(p, site)] = (st.st_size, st.st_mtime_ns)
        for d in dn:
            out[os.path.relpath(os.path.join(dp, d), site) + "/"] = ()
    return out


def run_case(ctl, case, timeout):
    before = snapshot(case["site"])
    t0 = time.monotonic()
    with open(case["site"] + ".err", "w+b") as errf:
        # GNU time reports its child's peak RSS (KiB). Not wait4 here: a child forked from
        # this Python starts with Python's resident size as its peak.
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", case["site"] + ".rss", ctl,
                              "validate", case["site"]], stdout=subprocess.DEVNULL,
                             stderr=errf, env=dict(os.environ, LC_ALL="C.UTF-8"))
        while True:
            pid, status = os.waitpid(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout:
                p.kill()
                os.waitpid(p.pid, 0)
                p.returncode = -9
                return {"ok": False, "why": "no answer within %ds" % timeout, "rss_kib": 0,
                        "secs": timeout}
            time.sleep(0.005)
        p.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read()
    os.unlink(case["site"] + ".err")
    with open(case["site"] + ".rss") as f:
        rss = int(f.read().split()[-1])
    os.unlink(case["site"] + ".rss")
    secs = time.monotonic() - t0
    text = err.decode("utf-8", "replace")
    res = {"rc": p.returncode, "secs": secs, "first": "", "rss_kib": rss}
    errors = [l for l in text.splitlines() if ": warning: " not in l and l.strip()]
    res["first"] = errors[0] if errors else ""
    prefix = case["site"] + "/"
    why = None
    if "AddressSanitizer" in text or "runtime error:" in text or "LeakSanitizer" in text:
        why = "sanitizer report"
    elif p.returncode not in (0, 1):
        why = "exit code %d" % p.returncode
    elif p.returncode == 0 and not case["heavy"]:
        why = "accepted"
    elif p.returncode == 1:
        first = res["first"]
        if not first.startswith(prefix + case["bad"]):
            why = "first error does not name %s" % case["bad"]
        elif case["line"] is not None and not first.startswith(
                "%s%s:%d: " % (prefix, case["bad"], case["line"])):
            why = "first error does not name line %d" % case["line"]
        elif case["bad"] != "data.tar.gz" and not re.match(
                re.escape(prefix + case["bad"]) + r"(:\d+)?: \S", first):
            why = "first error has no FILE[:LINE]: form"
        elif prefix in first[len(prefix):]:
            why = "first error names the file twice"
        elif case["expect"] and first[len(prefix):] != case["expect"]:
            why = "first error is not the expected '%s'" % case["expect"]
    if snapshot(case["site"]) != before:
        why = why or "the site changed"
    res["ok"] = why is None
    res["why"] = why
    return res


def main(argv):
    quick = "--quick" in argv
    seed = 13
    jout = None
    args = []
    it = iter(argv[1:])
    for a in it:
        if a == "--quick":
            continue
        elif a == "--seed":
            seed = int(next(it))
        elif a == "--json":
            jout = next(it)
        else:
            args.append(a)
    if len(args) != 2:
        sys.exit(__doc__)
    ctl, work = args
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    c = Corpus(os.path.join(work, "sites"), random.Random(seed))
    gen_hand(c)
    gen_conf(c, quick)
    gen_users(c, quick)
    gen_tarballs(c, quick, work)
    rss_limit_kib = int(os.environ.get("TUAP_BAD_RSS_KIB", 256 * 1024))
    timeout = int(os.environ.get("TUAP_BAD_TIMEOUT", 120))
    t0 = time.monotonic()
    kinds, bad, max_rss, max_secs, peak_case = {}, [], 0, 0.0, None
    for case in c.cases:
        r = run_case(ctl, case, timeout)
        if r["rss_kib"] > max_rss:
            max_rss, peak_case = r["rss_kib"], case
        k = kinds.setdefault(case["kind"], {"cases": 0, "refused": 0, "accepted": 0, "broken": 0})
        k["cases"] += 1
        k["refused" if r.get("rc") == 1 else "accepted"] += 1
        if not r["ok"]:
            k["broken"] += 1
            bad.append((case, r))
        max_secs = max(max_secs, r["secs"])
    total = len(c.cases)
    for case, r in bad[:40]:
        print("BROKEN %s (%s): %s; rc %s; first error: %s" % (
            os.path.basename(case["site"]), case["kind"], r["why"], r.get("rc"),
            r.get("first", "")[:300]))
    print("bad inputs: %-22s %6s %8s %8s %6s" % ("kind", "cases", "refused", "accepted", "broken"))
    for name in sorted(kinds):
        k = kinds[name]
        print("bad inputs: %-22s %6d %8d %8d %6d" % (name, k["cases"], k["refused"],
                                                    k["accepted"], k["broken"]))
    ok = not bad and max_rss <= rss_limit_kib
    print("bad inputs: %d cases, %d handled as required, %d not; peak RSS %.1f MiB (%s, bound %d MiB); "
          "slowest %.1fs; all in %.0fs: %s" % (
              total, total - len(bad), len(bad), max_rss / 1024,
              peak_case["kind"] if peak_case else "-", rss_limit_kib // 1024, max_secs,
              time.monotonic() - t0, "PASS" if ok else "FAIL"))
    if jout:
        with open(jout, "w") as f:
            json.dump({"cases": total, "broken": len(bad), "peak_rss_kib": max_rss,
                       "slowest_s": max_secs, "kinds": kinds, "seed": seed, "quick": quick}, f,
                      indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
