#!/usr/bin/python3
"""Helpers for bench/restore (run with /usr/bin/python3; standard library only).

    benchlib.py wire-recv ADDR PORT         accept connections in turn (until killed), read
                                            each to EOF (discarding), then close it
    benchlib.py wire-send ADDR PORT FILE    send FILE (sendfile), wait for the receiver to
                                            close; prints the seconds from connect to close
    benchlib.py events FILE                 reads tuap-ctl --json output; prints
                                            "upload_ms data_ms recv_ms extract_ms make_ms"
    benchlib.py report SIZE RESULTS [JSON]  the summary, from SIZE (bytes of data.tar.gz) and
                                            the "run metric seconds" lines in RESULTS; JSON
                                            (a file, or - for none): the contract's JSON
    benchlib.py fanout-report MAIN JSON FILE...
                                            bench/fanout's summary from tuap-fanout-sim's
                                            outputs (MAIN: the one with every round; FILEs:
                                            one per agent count, for the growth table)

The lines and JSON every measure script gives (the contract, bench/README.md) come from
measure() and write_json() below.
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


def num(x):
    """A figure with about three significant digits, as the summary lines print it."""
    a = abs(x)
    if a >= 100:
        return "%.0f" % x
    if a >= 10:
        return "%.1f" % x
    if a >= 1:
        return "%.2f" % x
    return "%.3g" % x


def measure(name, tuap, unit, base_name, base, better, goal=None, goal_met=None, details=None):
    """Prints the contract's line for one measure and returns its JSON object.
    R = tuap / baseline; better is "lower" or "higher"."""
    ratio = tuap / base if base else float("inf")
    print("%s: ratio %s (tuap %s %s vs %s %s %s), %s is better" %
          (name, num(ratio), num(tuap), unit, base_name, num(base), unit, better), flush=True)
    return {"name": name, "ratio": round(ratio, 4),
            "tuap": {"value": round(tuap, 4), "unit": unit},
            "baseline": {"name": base_name, "value": round(base, 4), "unit": unit},
            "better": better, "goal": goal, "goal_met": goal_met, "details": details or {}}


def write_json(path, bench, measures):
    if not path or path == "-":
        return
    with open(path, "w") as f:
        json.dump({"bench": bench, "measures": measures}, f, indent=1)
        f.write("\n")


def report(size, results, json_path="-"):
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

    def runs(*keys):
        return {k: [round(size / MIB / x, 2) for x in vals[k]] for k in keys if k in vals}

    details = {"size_mib": round(size / MIB, 1), "runs_mib_s": runs("tuap_data", "tar_xzf",
                                                                     "scp_tar"),
               "medians_s": {k: round(v, 3) for k, v in med.items()}}
    ms = [measure("restore", tuap, "MiB/s", "tar xzf", tar, "higher", ">= 0.8", tuap / tar >= 0.8,
                  details),
          measure("scp+tar", tuap, "MiB/s", "scp+tar", scp, "higher", ">= 1.5", tuap / scp >= 1.5,
                  details)]
    write_json(json_path, "restore", ms)
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


def fanout_report(main_path, json_path, *paths):
    def load(p):
        with open(p) as f:
            return json.load(f)

    main = load(main_path)
    n = main["agents"]
    msgs = n * (len(main["down_sizes"]) + len(main["up_sizes"]))
    rounds = main["rounds"]

    def med(side, key):
        return statistics.median(r[side][key] for r in rounds)

    t_all, r_all = med("tuap", "all_ms"), med("raw", "all_ms")
    t_p99, r_p99 = med("tuap", "p99_ms"), med("raw", "p99_ms")
    t_cpu, r_cpu = med("tuap", "cpu_s"), med("raw", "cpu_s")
    t_rss = main["tuapd_hwm_kib"] / 1024
    r_rss = main["raw_hwm_kib"] / 1024
    growth = []
    for p in sorted(set(paths) | {main_path}, key=lambda p: load(p)["agents"]):
        d = load(p)
        r0 = d["rounds"][0]
        growth.append({"agents": d["agents"], "tuapd_rss_mib": round(d["tuapd_hwm_kib"] / 1024, 1),
                       "raw_rss_mib": round(d["raw_hwm_kib"] / 1024, 1),
                       "tuap_all_ms": r0["tuap"]["all_ms"], "raw_all_ms": r0["raw"]["all_ms"],
                       "tuap_p99_ms": r0["tuap"]["p99_ms"], "tuapd_cpu_s": r0["tuap"]["cpu_s"],
                       "raw_cpu_s": r0["raw"]["cpu_s"],
                       "enroll_connect_ms": d["enroll_connect_ms"],
                       "provision_ms": d["provision_ms"]})
    details = {"agents": n, "messages_per_agent": {"down": main["down_sizes"],
                                                   "up": main["up_sizes"]},
               "runs": {"tuap": [r["tuap"] for r in rounds], "raw": [r["raw"] for r in rounds]},
               "growth": growth}
    print("%d agents; medians of %d round%s (a round: run make to every agent at once; %d "
          "messages each way and back per agent: %s down, %s up bytes)" %
          (n, len(rounds), "" if len(rounds) == 1 else "s", len(main["down_sizes"]) +
           len(main["up_sizes"]), main["down_sizes"], main["up_sizes"]))
    ms = [measure("fanout rate", msgs / t_all * 1000, "msg/s", "raw ROUTER/DEALER",
                  msgs / r_all * 1000, "higher", ">= 0.5", r_all / t_all >= 0.5, details),
          measure("fanout p99", t_p99, "ms", "raw ROUTER/DEALER", r_p99, "lower",
                  "tuap p99 < 50 ms", t_p99 < 50, {"p50_ms": {"tuap": med("tuap", "p50_ms"),
                                                            "raw": med("raw", "p50_ms")},
                                                   "runs": details["runs"]}),
          measure("fanout tuapd RSS", t_rss, "MiB", "raw ROUTER", r_rss, "lower",
                  "tuapd < 64 MiB", t_rss < 64, {"growth": growth}),
          measure("fanout tuapd CPU", t_cpu, "s", "raw ROUTER", r_cpu, "lower", None, None,
                  {"runs": details["runs"]})]
    print()
    print("growth (first round at each size; a fresh tuapd each):")
    print("%7s %10s %10s %11s %10s %10s %9s %12s %12s" %
          ("agents", "tuapd MiB", "raw MiB", "tuap ms", "raw ms", "p99 ms", "CPU s",
           "enroll ms", "provision ms"))
    for g in growth:
        print("%7d %10.1f %10.1f %11d %10d %10d %9.2f %12d %12d" %
              (g["agents"], g["tuapd_rss_mib"], g["raw_rss_mib"], g["tuap_all_ms"],
               g["raw_all_ms"], g["tuap_p99_ms"], g["tuapd_cpu_s"], g["enroll_connect_ms"],
               g["provision_ms"]))
    write_json(json_path, "fanout", ms)


def main(argv):
    cmds = {"wire-recv": (wire_recv, 2, 2), "wire-send": (wire_send, 3, 3),
            "events": (events, 1, 1), "report": (report, 2, 3),
            "fanout-report": (fanout_report, 3, 1000)}
    if len(argv) < 2 or argv[1] not in cmds or not (
            cmds[argv[1]][1] <= len(argv) - 2 <= cmds[argv[1]][2]):
        sys.exit(__doc__)
    cmds[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
