#!/usr/bin/python3
"""Helpers for bench/restore (run with /usr/bin/python3; standard library only).

    benchlib.py wire-recv ADDR PORT         accept connections in turn (until killed), read
                                            each to EOF (discarding), then close it
    benchlib.py wire-send ADDR PORT FILE    send FILE (sendfile), wait for the receiver to
                                            close; prints the seconds from connect to close
    benchlib.py events FILE                 reads tuap-ctl --json output; prints
                                            "upload_ms data_ms recv_ms extract_ms make_ms"
    benchlib.py report SIZE RESULTS         the summary, from SIZE (bytes of data.tar.gz) and
                                            the "run metric seconds" lines in RESULTS
"""
import json
import socket
import statistics
import sys
import time


def wire_recv(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(1)
    buf = bytearray(1 << 20)
    while True:
        c, _ = s.accept()
        n = 0
        while True:
            k = c.recv_into(buf)
            if not k:
                break
            n += k
        c.close()
        print("received %d bytes" % n, flush=True)


def wire_send(addr, port, path):
    with open(path, "rb") as f:
        t0 = time.monotonic()
        s = socket.create_connection((addr, int(port)), timeout=600)
        s.sendfile(f)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
        t1 = time.monotonic()
        s.close()
    print("%.3f" % (t1 - t0))


def events(path):
    """Times of the tuap job from its --json events: the phases' phase_ms, and within the data
    phase, when the agent said the whole file was received and verified."""
    upload = data = make = None
    data_start = received = None
    final = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            ev = json.loads(line)
            if ev.get("final"):
                final = ev.get("exit_code")
            if ev.get("type") == "phase":
                name, state = ev.get("name"), ev.get("state")
                if name == "data" and state == "started" and data_start is None:
                    data_start = ev.get("unix_ms")
                if state == "done" and "phase_ms" in ev:
                    if name == "upload":
                        upload = ev["phase_ms"]
                    elif name == "data":
                        data = ev["phase_ms"]
                    elif name == "make":
                        make = ev["phase_ms"]
            elif ev.get("type") == "step" and ev.get("name") == "data":
                msg = ev.get("message") or ""
                if received is None and msg.startswith("received"):
                    received = ev.get("unix_ms")
    if final != 0 or data is None:
        sys.exit("%s: the job did not finish well (final exit code %s, data phase %s)" %
                 (path, final, data))
    recv = received - data_start if received and data_start else -1
    extract = data - recv if recv >= 0 else -1
    print(upload if upload is not None else -1, data, recv, extract,
          make if make is not None else -1)


MIB = 1 << 20


def report(size, results):
    size = int(size)
    vals = {}
    with open(results) as f:
        for line in f:
            run, metric, secs = line.split()
            if float(secs) >= 0:
                vals.setdefault(metric, []).append(float(secs))
    med = {k: statistics.median(v) for k, v in vals.items()}

    def rate(k):
        return size / MIB / med[k]

    def fmt(k):
        v = vals[k]
        return "%7.2fs  %7.1f MiB/s   (runs: %s)" % (med[k], rate(k), " ".join(
            "%.2f" % x for x in v))

    n = max(len(v) for v in vals.values())
    print("data.tar.gz: %.1f MiB; medians of %d run%s (MiB/s of data.tar.gz bytes)" %
          (size / MIB, n, "" if n == 1 else "s"))
    tuap, tar, scp = rate("tuap_data"), rate("tar_xzf"), rate("scp_tar")
    print("restore: ratio %.2f (tuap %.1f MiB/s vs tar xzf %.1f MiB/s)" % (tuap / tar, tuap, tar))
    print("scp+tar: ratio %.2f (tuap %.1f MiB/s vs scp+tar %.1f MiB/s)" % (tuap / scp, tuap, scp))
    print()
    rows = [
        ("tuap data phase", "tuap_data"),
        ("  until the last byte was in", "tuap_recv"),
        ("  after it (extract tail, sync, swap)", "tuap_extract"),
        ("tuap upload ctl->tuapd (local)", "tuap_upload"),
        ("tuap make (no-op)", "tuap_make"),
        ("tuap-ctl wall (validate+all)", "tuap_wall"),
        ("tar xzf", "tar_xzf"),
        ("  then sync -f", "tar_sync"),
        ("scp+tar", "scp_tar"),
        ("  scp", "scp"),
        ("  ssh tar xzf", "ssh_tar"),
        ("where the time goes:", None),
        ("  wire (raw TCP over the veth)", "wire"),
        ("  sha256 (sha256sum)", "sha256sum"),
        ("  sha256 (openssl, as the agent)", "sha256_openssl"),
        ("  gunzip (gzip -dc >/dev/null)", "gunzip"),
        ("  disk (tar xf of the .tar)", "disk"),
    ]
    for label, k in rows:
        if k is None:
            print(label)
        elif k in vals:
            print("%-36s %s" % (label, fmt(k)))


def main(argv):
    cmds = {"wire-recv": (wire_recv, 2), "wire-send": (wire_send, 3), "events": (events, 1),
            "report": (report, 2)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        sys.exit(__doc__)
    fn, _ = cmds[argv[1]]
    fn(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
