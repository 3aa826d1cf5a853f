#!/usr/bin/python3
"""The accounts of a root as comparable facts, and the comparison of two roots' facts (the
differential test of issue 14, tests/integration/test_users_cloudinit.sh).

    users_snapshot.py snapshot ROOT BASE > FACTS
    users_snapshot.py compare CASE CLOUDINIT_FACTS TUAP_FACTS DELIBERATE

A fact is one line `KEY = VALUE`, KEY unique: every field of every /etc/passwd, group, shadow,
gshadow, subuid and subgid entry (shadow's last-change day normalised to <day> when it is a
positive number, since the two runs may straddle midnight); every sudo rule per user as
`sudo USER rule N` (whatever the file under /etc/sudoers.d holds it: cloud-init writes one
90-cloud-init-users, tuap one file per user), with its file's mode and owner, plus the mode of
/etc/sudoers.d and the digest of /etc/sudoers; for each user that is not in BASE (the pristine
root) or whose home is not BASE's: its home (exists, owner, group, mode, the files in it), its
~/.ssh and authorized_keys (owner, group, mode, and each key line, sorted: cloud-init writes its
keys in set order, tuap inside a marked block, so only the key lines are compared); the size of
/var/log/lastlog and faillog (no_log_init) and whether the user has a mail spool.

compare prints each KEY whose values differ as `KEY: cloud-init=VALUE tuap=VALUE` (<absent> when
one side has no such fact), marking those DELIBERATE lists for CASE ("CASE<TAB>KEY<TAB>
CLOUDINIT<TAB>TUAP<TAB>REASON", matched exactly) as deliberate with their reason. Exit 0 when
every difference is deliberate, 1 otherwise.
"""
import hashlib
import os
import stat
import sys

ABSENT = "<absent>"
TABLES = {
    "passwd": ("password", "uid", "gid", "gecos", "home", "shell"),
    "group": ("password", "gid", "members"),
    "shadow": ("password", "lastchg", "min", "max", "warn", "inactive", "expire", "reserved"),
    "gshadow": ("password", "admins", "members"),
    "subuid": ("start", "count"),
    "subgid": ("start", "count"),
}


def read(root, rel):
    try:
        with open(os.path.join(root, rel.lstrip("/")), encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def rows(root, table):
    """The entries of /etc/TABLE as (name, [fields]); subuid/subgid names may repeat."""
    out = []
    for line in (read(root, "/etc/" + table) or "").splitlines():
        if line and not line.startswith("#"):
            f = line.split(":")
            out.append((f[0], f[1:]))
    return out


def names(root, table="passwd"):
    return {n: f for n, f in rows(root, table)}


def owner_of(root, st):
    """uid:gid of st as the root's names (numbers when the root has none)."""
    users = {f[1]: n for n, f in rows(root, "passwd")}
    groups = {f[1]: n for n, f in rows(root, "group")}
    return users.get(str(st.st_uid), str(st.st_uid)), groups.get(str(st.st_gid), str(st.st_gid))


def file_facts(root, key, path, facts):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        facts[key] = "missing"
        return None
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"
    u, g = owner_of(root, st)
    facts[key] = "%s %s:%s %o" % (kind, u, g, stat.S_IMODE(st.st_mode))
    return st


def case_texts(root):
    """The case files copied into the root (test_users_cloudinit.sh puts them there)."""
    d = os.path.join(root, "tmp/tuapt-users")
    out = ""
    for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if fn.endswith(".yaml"):
            out += read(root, "/tmp/tuapt-users/" + fn) or ""
    return out


def made_hash(v, case):
    """A crypt(3) hash made here from a plain-text password (the case does not hold it):
    its salt is random, so only its scheme and lock are facts."""
    lock = v[: len(v) - len(v.lstrip("!"))]
    h = v[len(lock):]
    if not h.startswith("$") or h in case:
        return v
    return "%s<made here: %s hash>" % (lock, h.split("$")[1] if h.count("$") > 1 else "?")


def table_facts(root, facts):
    case = case_texts(root)
    for table, fields in TABLES.items():
        seen = {}
        for name, vals in rows(root, table):
            n = seen[name] = seen.get(name, 0) + 1
            ident = name if n == 1 else "%s#%d" % (name, n)
            for i, field in enumerate(fields):
                v = vals[i] if i < len(vals) else ABSENT
                if table == "shadow" and field == "lastchg" and v.isdigit() and int(v) > 0:
                    v = "<day>"
                if table == "shadow" and field == "password":
                    v = made_hash(v, case)
                facts["%s %s %s" % (table, ident, field)] = v


def sudo_facts(root, facts):
    d = os.path.join(root, "etc/sudoers.d")
    file_facts(root, "sudoers.d", d, facts)
    main = read(root, "/etc/sudoers") or ""
    facts["sudoers digest"] = hashlib.sha256(main.encode()).hexdigest()[:16]
    count = {}
    for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if fn == "README":
            continue
        path = os.path.join(d, fn)
        text = read(root, "/etc/sudoers.d/" + fn) or ""
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            who, _, rule = line.partition(" ")
            n = count[who] = count.get(who, 0) + 1
            facts["sudo %s rule %d" % (who, n)] = rule.strip()
            file_facts(root, "sudo %s file" % who, path, facts)


def home_facts(root, base, facts):
    base_users = names(base)
    for name, f in rows(root, "passwd"):
        home = f[4] if len(f) > 4 else ""
        if name in base_users and base_users[name][4] == home:
            continue
        h = os.path.join(root, home.lstrip("/"))
        if file_facts(root, "home %s" % name, h, facts) and os.path.isdir(h):
            inside = sorted(
                os.path.relpath(os.path.join(dp, fn), h)
                for dp, dns, fns in os.walk(h)
                for fn in fns + dns
                if not os.path.relpath(os.path.join(dp, fn), h).startswith(".ssh")
            )
            facts["home %s files" % name] = " ".join(inside)
        ssh = os.path.join(h, ".ssh")
        if os.path.lexists(ssh):
            file_facts(root, "ssh %s dir" % name, ssh, facts)
            ak = os.path.join(ssh, "authorized_keys")
            if file_facts(root, "ssh %s authorized_keys" % name, ak, facts):
                with open(ak, encoding="utf-8") as fh:
                    keys = [k.strip() for k in fh if k.strip() and not k.startswith("#")]
                for i, k in enumerate(sorted(keys), 1):
                    facts["ssh %s key %d" % (name, i)] = k
        facts["mail %s" % name] = "yes" if os.path.exists(
            os.path.join(root, "var/mail", name)) else "no"


def snapshot(root, base):
    facts = {}
    table_facts(root, facts)
    sudo_facts(root, facts)
    home_facts(root, base, facts)
    for log in ("lastlog", "faillog"):
        p = os.path.join(root, "var/log", log)
        facts["%s size" % log] = str(os.path.getsize(p)) if os.path.exists(p) else ABSENT
    for k in sorted(facts):
        print("%s = %s" % (k, facts[k]))


def load_facts(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition(" = ")
            out[k] = v
    return out


def load_deliberate(path, case):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            f5 = line.rstrip("\n").split("\t")
            if len(f5) != 5:
                sys.exit("deliberate differences: not 5 tab-separated fields: %r" % line)
            if f5[0] == case:
                out[(f5[1], f5[2], f5[3])] = f5[4]
    return out


def compare(case, ci_path, tuap_path, deliberate_path):
    ci, tu = load_facts(ci_path), load_facts(tuap_path)
    deliberate = load_deliberate(deliberate_path, case)
    unexplained = 0
    for k in sorted(set(ci) | set(tu)):
        a, b = ci.get(k, ABSENT), tu.get(k, ABSENT)
        if a == b:
            continue
        why = deliberate.pop((k, a, b), None)
        if why is None:
            unexplained += 1
            print("  DIFF  %s: cloud-init=%s tuap=%s" % (k, a, b))
        else:
            print("  deliberate  %s: cloud-init=%s tuap=%s (%s)" % (k, a, b, why))
    for (k, a, b), why in sorted(deliberate.items()):
        # a listed difference that did not happen: the table is stale, say so
        unexplained += 1
        print("  STALE deliberate difference not seen: %s: cloud-init=%s tuap=%s" % (k, a, b))
    return 1 if unexplained else 0


def main(argv):
    if len(argv) == 4 and argv[1] == "snapshot":
        snapshot(argv[2], argv[3])
        return 0
    if len(argv) == 6 and argv[1] == "compare":
        return compare(*argv[2:])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
