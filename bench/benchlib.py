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
    benchlib.py map-sizes MAP                the bytes each library puts into a binary, from
                                            its linker map (text, rodata, data, eh_frame):
                                            "LIBRARY BYTES" lines, largest first
    benchlib.py footprint SECONDS AGENT_PID QGA_PID AGENT_BIN QGA_BIN MAP JSON
                                            bench/footprint's measure: samples both daemons'
                                            RSS and CPU every second for SECONDS, side by side,
                                            then the summary (binaries: stripped copies)
    benchlib.py merge OUT INFO JSON...       bench/run: OUT (latest.json) from INFO (machine,
                                            benches' status) and the benches' JSON files;
                                            prints the measures and the summary line
    benchlib.py plot LATEST OUTDIR           bench/run: one PNG per measure (gnuplot)
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


def json_events(path):
    """The events of a tuap-ctl --json stream (other lines, such as warnings, skipped)."""
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                yield json.loads(line)


def events(path):
    """Times of the tuap job from its --json events: the phases' phase_ms, and within the data
    phase, when the agent said the whole file was received and verified."""
    upload = data = make = None
    data_start = received = None
    final = None
    for ev in json_events(path):
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
    R = tuap / baseline; better is "lower" or "higher". A baseline of 0 (a daemon that used no
    CPU at all) prints "ratio inf" and gives a null ratio in the JSON."""
    ratio = tuap / base if base else None
    print("%s: ratio %s (tuap %s %s vs %s %s %s), %s is better" %
          (name, num(ratio) if ratio is not None else "inf", num(tuap), unit, base_name,
           num(base), unit, better), flush=True)
    return {"name": name, "ratio": round(ratio, 4) if ratio is not None else None,
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
    def series(*pairs):
        return {label: [[i + 1, size / MIB / x] for i, x in enumerate(vals[k])]
                for label, k in pairs if k in vals}

    plot = {"title": "restore of %.0f MiB data.tar.gz, per run" % (size / MIB), "xlabel": "run",
            "ylabel": "MiB/s (higher is better)",
            "series": series(("tuap data phase", "tuap_data"), ("tar xzf", "tar_xzf"),
                             ("scp+tar", "scp_tar"))}
    details["plot"] = plot
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
        ("  sha256 (openssl; SHA-NI like the agent's Nettle)", "sha256_openssl"),
        ("  gunzip (gzip -dc >/dev/null)", "gunzip"),
        ("  disk (tar xf of the .tar)", "disk"),
    ]
    for label, k in rows:
        if k is None:
            print(label)
        elif k in vals:
            print("%-36s %s" % (label, fmt(k)))


def map_sizes(path):
    """Sums the allocated, file-backed input sections of a GNU ld map by the archive (or
    object) they came from; the program's own static libraries count as "tuap"."""
    import re
    sizes = {}
    pend = None
    in_map = False
    keep = (".text", ".rodata", ".data", ".eh_frame", ".gcc_except_table", ".tdata",
            ".init_array", ".fini_array")
    with open(path) as f:
        for line in f:
            if line.startswith("Linker script and memory map"):
                in_map = True
                continue
            if not in_map:
                continue
            m = re.match(r"^ (\.\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)", line)
            if m:
                name, size, obj = m.group(1), int(m.group(3), 16), m.group(4)
            else:
                m = re.match(r"^ (\.\S+)\s*$", line)
                if m:
                    pend = m.group(1)
                    continue
                m = re.match(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)", line)
                if not (m and pend):
                    pend = None
                    continue
                name, size, obj, pend = pend, int(m.group(2), 16), m.group(3), None
            if not name.startswith(keep) or not size:
                continue
            lib = re.sub(r"\(.*\)$", "", obj).split("/")[-1]
            if "CMakeFiles" in obj or lib.startswith("libtuap_"):
                lib = "tuap"
            sizes[lib] = sizes.get(lib, 0) + size
    for lib, n in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(lib, n)


def proc_cpu_rss(pid):
    """(CPU seconds of every thread, from their schedstat; RSS in KiB) of pid."""
    import os
    cpu = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                cpu += int(f.read().split()[0])
        except OSError:
            pass
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu / 1e9, rss


def footprint(seconds, agent_pid, qga_pid, agent_bin, qga_bin, map_path, json_path):
    import os
    seconds, pids = int(seconds), {"tuap": int(agent_pid), "qga": int(qga_pid)}
    first = {k: proc_cpu_rss(p) for k, p in pids.items()}
    rss = {k: [] for k in pids}
    for _ in range(seconds):
        time.sleep(1)
        for k, p in pids.items():
            rss[k].append(proc_cpu_rss(p)[1])
    last = {k: proc_cpu_rss(p) for k, p in pids.items()}
    cpu_ms = {k: (last[k][0] - first[k][0]) * 1000 for k in pids}
    rss_mib = {k: statistics.median(v) / 1024 for k, v in rss.items()}
    size = {"tuap": os.path.getsize(agent_bin) / MIB, "qga": os.path.getsize(qga_bin) / MIB}
    libs = {}
    if os.path.exists(map_path):
        import io
        import contextlib
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            map_sizes(map_path)
        for line in out.getvalue().split("\n"):
            if line:
                lib, n = line.split()
                libs[lib] = int(n)
    print("idle over %d s, sampled every second, both at once (RSS: median of the samples; "
          "CPU: every thread)" % seconds)
    rss_plot = {"title": "idle RSS, sampled every second", "xlabel": "s", "ylabel": "MiB",
                "series": {"tuap-agent": [[i + 1, v / 1024] for i, v in enumerate(rss["tuap"])],
                           "qemu-ga": [[i + 1, v / 1024] for i, v in enumerate(rss["qga"])]}}
    ms = [measure("agent RSS", rss_mib["tuap"], "MiB", "qemu-ga", rss_mib["qga"], "lower",
                  "<= 0.5", rss_mib["tuap"] / rss_mib["qga"] <= 0.5,
                  {"rss_kib": rss, "seconds": seconds, "plot": rss_plot}),
          measure("agent CPU", cpu_ms["tuap"], "ms", "qemu-ga", cpu_ms["qga"], "lower", None,
                  None, {"seconds": seconds, "cpu_ms": cpu_ms}),
          measure("agent binary", size["tuap"], "MiB", "qemu-ga", size["qga"], "lower",
                  "tuap-agent stripped <= 3 MiB", size["tuap"] <= 3,
                  {"stripped_bytes": {k: int(v * MIB) for k, v in size.items()},
                   "libraries_bytes": libs})]
    if libs:
        total = sum(libs.values())
        print()
        print("what the agent's %.2f MiB of code and data come from (linker map):" %
              (total / MIB))
        for lib, n in sorted(libs.items(), key=lambda kv: -kv[1]):
            if n >= 1024:
                print("  %-20s %7.0f KiB  %4.1f%%" % (lib, n / 1024, 100 * n / total))
    write_json(json_path, "footprint", ms)


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
                       "tuap_p99_ms": r0["tuap"]["p99_ms"], "raw_p99_ms": r0["raw"]["p99_ms"],
                       "tuapd_cpu_s": r0["tuap"]["cpu_s"],
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
    def gplot(title, ylabel, *cols):
        return {"title": title + " (growth table)", "xlabel": "agents",
                "ylabel": ylabel, "logx": True,
                "series": {label: [[g["agents"], f(g)] for g in growth] for label, f in cols}}

    per = (len(main["down_sizes"]) + len(main["up_sizes"])) * 1000
    details["plot"] = gplot("message rate, run make to every agent", "msg/s (log scale)",
                            ("tuapd", lambda g: g["agents"] * per / max(g["tuap_all_ms"], 1)),
                            ("raw ROUTER/DEALER",
                             lambda g: g["agents"] * per / max(g["raw_all_ms"], 1)))
    details["plot"]["logy"] = True
    p99_plot = gplot("p99 time to a job's end", "ms", ("tuapd", lambda g: g["tuap_p99_ms"]),
                     ("raw ROUTER/DEALER", lambda g: g["raw_p99_ms"]))
    rss_plot = gplot("peak RSS", "MiB", ("tuapd", lambda g: g["tuapd_rss_mib"]),
                     ("raw ROUTER", lambda g: g["raw_rss_mib"]))
    cpu_plot = gplot("CPU per round", "s", ("tuapd", lambda g: g["tuapd_cpu_s"]),
                     ("raw ROUTER", lambda g: g["raw_cpu_s"]))
    ms = [measure("fanout rate", msgs / t_all * 1000, "msg/s", "raw ROUTER/DEALER",
                  msgs / r_all * 1000, "higher", ">= 0.5", r_all / t_all >= 0.5, details),
          measure("fanout p99", t_p99, "ms", "raw ROUTER/DEALER", r_p99, "lower",
                  "tuap p99 < 50 ms", t_p99 < 50, {"p50_ms": {"tuap": med("tuap", "p50_ms"),
                                                            "raw": med("raw", "p50_ms")},
                                                   "runs": details["runs"], "plot": p99_plot}),
          measure("fanout tuapd RSS", t_rss, "MiB", "raw ROUTER", r_rss, "lower",
                  "tuapd < 64 MiB", t_rss < 64, {"growth": growth, "plot": rss_plot}),
          measure("fanout tuapd CPU", t_cpu, "s", "raw ROUTER", r_cpu, "lower", None, None,
                  {"runs": details["runs"], "plot": cpu_plot})]
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


def merge(out_path, info_path, *paths):
    """bench/run: latest.json from the machine info and every bench's JSON (a path that does
    not exist is a bench that skipped or failed: its status is in info["benches"]). Prints one
    line per measure, then the summary line."""
    import os
    with open(info_path) as f:
        info = json.load(f)
    info["measures"] = []
    for p in paths:
        if not os.path.exists(p):
            continue
        with open(p) as f:
            b = json.load(f)
        for m in b["measures"]:
            m["bench"] = b["bench"]
            info["measures"].append(m)
    print()
    for m in info["measures"]:
        r = m["ratio"]
        goal = ("goal %s: %s" % (m["goal"], "met" if m["goal_met"] else "NOT met")
                if m.get("goal") else "no goal")
        print("%s: ratio %s (tuap %s %s vs %s %s %s), %s is better  [%s]" %
              (m["name"], num(r) if r is not None else "inf", num(m["tuap"]["value"]),
               m["tuap"]["unit"], m["baseline"]["name"], num(m["baseline"]["value"]),
               m["baseline"]["unit"], m["better"], goal))
    goals = [m for m in info["measures"] if m.get("goal")]
    met = sum(1 for m in goals if m["goal_met"])
    if goals:
        print("summary: ratio %s (tuap %d goals met vs all %d goals), higher is better; "
              "benches: %s" % (num(met / len(goals)), met, len(goals),
                               ", ".join("%s %s" % (k, v["status"])
                                         for k, v in info["benches"].items())))
    else:
        print("summary: no measure ran; benches: %s" %
              ", ".join("%s %s" % (k, v["status"]) for k, v in info["benches"].items()))
    info["summary"] = {"goals": len(goals), "goals_met": met}
    with open(out_path, "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")


def plot(latest, outdir):
    """One PNG per measure into outdir, with gnuplot: the series of details["plot"] when the
    measure has one (per-run values, samples, the growth table), else tuap against baseline."""
    import os
    import re
    import subprocess
    with open(latest) as f:
        info = json.load(f)
    for m in info["measures"]:
        spec = m.get("details", {}).get("plot")
        name = re.sub(r"[^a-z0-9]+", "-", m["name"].lower()).strip("-")
        png = os.path.join(outdir, "%s.png" % name)
        title = "%s: ratio %s (%s is better)" % (m["name"], num(m["ratio"]) if m["ratio"]
                                                  is not None else "inf", m["better"])
        lines = ["set terminal pngcairo size 800,480 noenhanced" if has_cairo() else
                 "set terminal png size 800,480 noenhanced", "set output '%s'" % png,
                 "set grid", "set key outside bottom center horizontal"]
        data = []
        if spec:
            lines.append('set title "%s\\n%s"' % (title, spec["title"].replace('"', "")))
            lines.append("set xlabel '%s'" % spec["xlabel"])
            lines.append("set ylabel '%s'" % spec["ylabel"])
            if spec.get("logx"):
                lines.append("set logscale x")
            if spec.get("logy"):
                lines.append("set logscale y")
            plots = []
            for label, pts in spec["series"].items():
                plots.append("'-' using 1:2 with linespoints title '%s'" % label)
                data.append("\n".join("%s %s" % (x, y) for x, y in pts) + "\ne")
            lines.append("plot " + ", ".join(plots))
        else:
            lines += ["set title '%s'" % title, "set style fill solid 0.6", "set boxwidth 0.5",
                      "set yrange [0:*]", "set ylabel '%s'" % m["tuap"]["unit"],
                      "set xtics ('tuap' 0, '%s' 1)" % m["baseline"]["name"],
                      "plot '-' using 1:2 with boxes notitle"]
            data.append("0 %s\n1 %s\ne" % (m["tuap"]["value"], m["baseline"]["value"]))
        subprocess.run(["gnuplot"], input="\n".join(lines + data) + "\n", text=True,
                       check=True, timeout=60)
        print("plot: %s" % png)


def has_cairo():
    import subprocess
    r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True,
                       timeout=30)
    return "pngcairo" in r.stdout + r.stderr


def main(argv):
    cmds = {"wire-recv": (wire_recv, 2, 2), "wire-send": (wire_send, 3, 3),
            "events": (events, 1, 1), "report": (report, 2, 3),
            "map-sizes": (map_sizes, 1, 1), "footprint": (footprint, 7, 7),
            "merge": (merge, 2, 100), "plot": (plot, 2, 2), "fanout-report": (fanout_report, 3, 1000)}
    if len(argv) < 2 or argv[1] not in cmds or not (
            cmds[argv[1]][1] <= len(argv) - 2 <= cmds[argv[1]][2]):
        sys.exit(__doc__)
    cmds[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
