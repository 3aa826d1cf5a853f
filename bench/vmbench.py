#!/usr/bin/python3
"""Reports of the benchmarks that boot real guests (bench/ready, bench/parallel); standard
library only, run with /usr/bin/python3.

    vmbench.py phases EVENTS T0_MS          the phase table of one tuap-ctl --json stream, times
                                            from T0_MS (unix ms): "phase start done seconds"
    vmbench.py ready RESULTS JSON           bench/ready's lines and JSON file (JSON may be "")
    vmbench.py parallel RESULTS JSON        bench/parallel's

RESULTS holds lines "RUN KEY VALUE" (see the scripts); events files are named by KEY *_events.
Every measure is printed as
    NAME: ratio R (tuap X UNIT vs BASELINE Y UNIT), lower is better
with R = tuap / baseline, and written into JSON as bench/run expects (bench/README.md).
"""
import json
import re
import statistics
import sys

from benchlib import json_events

# the phases of a provision, in order (ARCHITECTURE.md "A provision, phase by phase")
PRE_DOMAIN = ("plan", "image", "disk", "keys", "seed", "define")


def read_events(path, t0):
    """(final exit code, [phase rows in order of first event]) of a tuap-ctl --json stream;
    each row: phase, start_s and done_s (seconds from t0), seconds (tuapd's phase_ms)."""
    rows, order, final = {}, [], None
    for ev in json_events(path):
        if ev.get("final"):
            final = ev.get("exit_code")
        if ev.get("type") != "phase":
            continue
        name, state, ms = ev.get("name"), ev.get("state"), ev.get("unix_ms")
        if name not in rows:
            rows[name] = {"phase": name}
            order.append(name)
        row = rows[name]
        if "start_s" not in row and ms is not None:
            row["start_s"] = round((ms - t0) / 1000.0, 3)
        if state == "done":
            if ms is not None:
                row["done_s"] = round((ms - t0) / 1000.0, 3)
            if "phase_ms" in ev:
                row["seconds"] = round(ev["phase_ms"] / 1000.0, 3)
        row["state"] = state
    return final, [rows[n] for n in order]


# guest uptime (s) of the boot's milestones on a serial console log: cloud-init's stages (its
# own "Up N seconds"), the kernel's timestamp of tuap's installer starting the agent
MARKS = (("init-local", r"running 'init-local' at .* Up ([0-9.]+) seconds"),
         ("init", r"running 'init' at .* Up ([0-9.]+) seconds"),
         ("agent-started", r"\[ *([0-9.]+)\] .*tuap-install: tuap-agent \(re\)started"),
         ("modules:config", r"running 'modules:config' at .* Up ([0-9.]+) seconds"),
         ("modules:final", r"running 'modules:final' at .* Up ([0-9.]+) seconds"),
         ("finished", r"Cloud-init v\. \S+ finished at .* Up ([0-9.]+) seconds"))


def console_marks(path):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for name, rx in MARKS:
        m = re.search(rx, text)
        if m:
            out[name] = float(m.group(1))
    return out


def read_results(path):
    """{run: {key: value}}; values that parse as numbers are floats."""
    runs = {}
    with open(path) as f:
        for line in f:
            parts = line.split(None, 2)
            if len(parts) < 3:
                continue
            run, key, val = parts
            val = val.strip()
            try:
                val = float(val)
            except ValueError:
                pass
            runs.setdefault(run, {})[key] = val
    return runs


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x):
    return "-" if x is None else "%.1f" % x


def fmt2(x):
    return "-" if x is None else "%.2f" % x


def ratio_of(a, b):
    return round(a / b, 3) if a is not None and b else None


class Report:
    def __init__(self, bench):
        self.bench = bench
        self.measures = []

    def measure(self, name, tuap, base_name, base, unit, goal, details, better="lower"):
        """goal: (text, predicate on the ratio)"""
        ratio = tuap / base if tuap is not None and base else None
        m = {
            "name": name,
            "ratio": round(ratio, 3) if ratio is not None else None,
            "tuap": {"value": round(tuap, 3) if tuap is not None else None, "unit": unit},
            "baseline": {"name": base_name, "value": round(base, 3) if base is not None else None,
                         "unit": unit},
            "better": better,
            "goal": goal[0],
            "goal_met": bool(ratio is not None and goal[1](ratio)),
            "details": details,
        }
        self.measures.append(m)
        print("%s: ratio %s (tuap %s %s vs %s %s %s), %s is better" %
              (name, "-" if ratio is None else "%.2f" % ratio, fmt(tuap), unit, base_name,
               fmt(base), unit, better))
        return m

    def write(self, path):
        if path:
            with open(path, "w") as f:
                json.dump({"bench": self.bench, "measures": self.measures}, f, indent=1)
                f.write("\n")


LE_HALF = ("<= 0.5", lambda r: r <= 0.5)


def phase_table(tables, title):
    """Prints the phases' median start and duration over several runs' tables; returns the
    medians as rows."""
    order = []
    for t in tables:
        for row in t:
            if row["phase"] not in order:
                order.append(row["phase"])
    out = []
    print(title)
    print("  %-10s %9s %9s %9s   %s" % ("phase", "start s", "done s", "took s", "runs (took s)"))
    for p in order:
        rows = [r for t in tables for r in t if r["phase"] == p]
        st, dn, took = (med([r.get(k) for r in rows]) for k in ("start_s", "done_s", "seconds"))
        out.append({"phase": p, "start_s": st, "done_s": dn, "seconds": took,
                    "runs_seconds": [r.get("seconds") for r in rows]})
        print("  %-10s %9s %9s %9s   %s" % (p, fmt(st), fmt(dn), fmt(took), " ".join(
            fmt(r.get("seconds")) for r in rows)))
    return out


def ms_s(a, b):
    """seconds from unix ms a to unix ms b, None when either is missing (< 0)"""
    if a is None or b is None or a < 0 or b < 0:
        return None
    return (b - a) / 1000.0


def ready(results, json_out):
    runs = read_results(results)
    rep = Report("ready")
    per_run, tables = [], []
    for r in sorted(runs, key=int):
        v = runs[r]
        final, table = read_events(v["tuap_events"], v["tuap_t0"])
        if final != 0:
            sys.exit("%s: the provision did not finish (final exit code %s)" %
                     (v["tuap_events"], final))
        byname = {row["phase"]: row for row in table}
        hello = byname.get("hello", {}).get("done_s")
        define = byname.get("define", {}).get("done_s")
        if hello is None or define is None:
            sys.exit("%s: no hello or define done event" % v["tuap_events"])
        tables.append(table)
        per_run.append({
            "run": int(r),
            "order": v.get("order"),
            "tuap_hello_s": hello,
            "tuap_predomain_s": define,
            "tuap_predomain_phases_s": round(sum(byname[p].get("seconds", 0) for p in PRE_DOMAIN
                                                 if p in byname), 3),
            "tuap_done_s": byname.get("make", {}).get("done_s"),
            "tuap_guest_boot_finished_s": ms_s(v["tuap_t0"], v.get("tuap_bf")),
            "tuap_guest_uptime_at_final_s": v.get("tuap_uptime"),
            "virt_install_started_s": ms_s(v["vi_t0"], v["vi_started"]),
            "virt_install_boot_finished_s": ms_s(v["vi_t0"], v["vi_bf"]),
            "virt_install_guest_uptime_at_final_s": v.get("vi_uptime"),
            "load_before": v.get("load"),
            "tuap_guest_uptime_marks_s": console_marks(v.get("tuap_console", "")),
            "virt_install_guest_uptime_marks_s": console_marks(v.get("vi_console", "")),
        })

    def m(k):
        return med([x[k] for x in per_run])

    print("runs (seconds from the command's start; tuap: tuap-ctl provision, virt-install: "
          "virt-install --import --cloud-init):")
    print("  %-4s %-12s %9s %9s %11s | %11s %11s | %7s %7s" % (
        "run", "order", "tuap def", "hello", "tuap bfin", "vi started", "vi bfin", "ready",
        "pre-dom"))
    for x in per_run:
        x["ready_ratio"] = ratio_of(x["tuap_hello_s"], x["virt_install_boot_finished_s"])
        x["predomain_ratio"] = ratio_of(x["tuap_predomain_s"], x["virt_install_started_s"])
        print("  %-4s %-12s %9s %9s %11s | %11s %11s | %7s %7s" % (
            x["run"], x["order"] or "-", fmt(x["tuap_predomain_s"]), fmt(x["tuap_hello_s"]),
            fmt(x["tuap_guest_boot_finished_s"]), fmt(x["virt_install_started_s"]),
            fmt(x["virt_install_boot_finished_s"]), fmt2(x["ready_ratio"]),
            fmt2(x["predomain_ratio"])))
    print("  (ready, pre-dom: the round's own ratios; the lines below are ratios of the medians)")
    print()
    print("the guests' boot (guest uptime in s at each milestone of their serial console, "
          "median over runs):")
    print("  %-16s %8s %14s" % ("milestone", "tuap", "virt-install"))
    for name, _ in MARKS:
        a = med([x["tuap_guest_uptime_marks_s"].get(name) for x in per_run])
        b = med([x["virt_install_guest_uptime_marks_s"].get(name) for x in per_run])
        if a is not None or b is not None:
            print("  %-16s %8s %14s" % (name, fmt(a), fmt(b)))
    print()
    phases = phase_table(tables, "tuap-ctl provision of example.test, phase by phase "
                         "(median over runs; start and done from tuap-ctl's start):")
    print()
    common = {"runs": per_run, "median_tuap_guest_boot_finished_s": m("tuap_guest_boot_finished_s"),
              "median_of_round_ratios": med([x["ready_ratio"] for x in per_run])}
    rep.measure("ready", m("tuap_hello_s"), "virt-install+cloud-init", m(
        "virt_install_boot_finished_s"), "s", LE_HALF, dict(common, **{
            "tuap": "tuap-ctl provision start -> the agent's hello (phase hello done)",
            "baseline": "virt-install --import --cloud-init start -> cloud-init's final message "
                        "on the serial console (boot-finished written)",
            "provision_phases": phases,
        }))
    rep.measure("pre-domain", m("tuap_predomain_s"), "virt-install", m("virt_install_started_s"),
                "s", LE_HALF, {
                    "tuap": "tuap-ctl provision start -> phase define done (domain started); "
                            "image already in the pool",
                    "baseline": "virt-install's command time (returns once the domain started)",
                    "median_tuap_predomain_phases_s": m("tuap_predomain_phases_s"),
                    "runs": [{k: x[k] for k in ("run", "tuap_predomain_s",
                                                "tuap_predomain_phases_s",
                                                "virt_install_started_s", "predomain_ratio")}
                             for x in per_run],
                    "median_of_round_ratios": med([x["predomain_ratio"] for x in per_run]),
                })
    rep.write(json_out)


def spans_of(table):
    """a domain's own work (plan start -> define done), boot (define done -> hello done) and
    steps (hello done -> make done), in seconds"""
    b = {row["phase"]: row for row in table}

    def t(p, k):
        return b.get(p, {}).get(k)

    def d(a, z):
        return round(z - a, 3) if a is not None and z is not None else None

    return {"own_work_s": d(t("plan", "start_s"), t("define", "done_s")),
            "boot_s": d(t("define", "done_s"), t("hello", "done_s")),
            "steps_s": d(t("hello", "done_s"), t("make", "done_s")),
            "define_done_s": t("define", "done_s")}


def parallel(results, json_out):
    runs = read_results(results)
    rep = Report("parallel")
    modes = {}
    for r in sorted(runs):
        v = runs[r]
        # r is MODE.ROUND; per-domain keys DOMAIN_events, DOMAIN_t0
        mode, _ = r.split(".", 1)
        doms = sorted(k[:-len("_events")] for k in v if k.endswith("_events"))
        tables = {}
        for d in doms:
            final, table = read_events(v[d + "_events"], v["t0"])
            if final != 0:
                sys.exit("%s: the provision did not finish (final %s)" % (v[d + "_events"], final))
            tables[d] = table
        modes.setdefault(mode, []).append({"round": r, "wall_s": ms_s(v["t0"], v["t1"]),
                                           "tables": tables, "load": v.get("load"),
                                           "cpu_busy_pct": v.get("cpu_busy_pct")})
    n = None
    for rr in modes.get("par", []):
        n = len(rr["tables"])

    def walls(mode):
        return med([x["wall_s"] for x in modes.get(mode, [])])

    details = {"domains": n, "rounds": {}}
    for mode, label in (("seq", "one after another"), ("par", "all at once")):
        for rr in modes.get(mode, []):
            print("%s (%s), wall %s s, %s" % (rr["round"], label, fmt(rr["wall_s"]), rr["load"]))
            tabs = [rr["tables"][d] for d in sorted(rr["tables"])]
            rows = phase_table(tabs, "  phases, median over the %d domains:" % len(tabs))
            per_dom = {}
            for d in sorted(rr["tables"]):
                t = rr["tables"][d]
                per_dom[d] = {row["phase"]: {k: row.get(k) for k in ("start_s", "done_s", "seconds")}
                              for row in t}
                last = t[-1].get("done_s") if t else None
                print("    %-12s done at %s s: %s" % (d, fmt(last), " ".join(
                    "%s %s" % (row["phase"], fmt(row.get("seconds"))) for row in t)))
            spans = [spans_of(rr["tables"][d]) for d in sorted(rr["tables"])]
            span_med = {k: med([x[k] for x in spans]) for k in ("own_work_s", "boot_s", "steps_s")}
            defines = sorted(x["define_done_s"] for x in spans if x["define_done_s"] is not None)
            print("    per domain (median): tuapd's work before the domain runs %s s (plan start "
                  "-> define done), boot %s s (define done -> hello), steps %s s (hello -> make "
                  "done); defines done at %s s; host CPUs %s%% busy" % (
                      fmt(span_med["own_work_s"]), fmt(span_med["boot_s"]),
                      fmt(span_med["steps_s"]), " ".join(fmt(x) for x in defines),
                      rr["cpu_busy_pct"]))
            details["rounds"][rr["round"]] = {"wall_s": rr["wall_s"], "load": rr["load"],
                                              "cpu_busy_pct": rr["cpu_busy_pct"],
                                              "median_spans": span_med, "define_done_s": defines,
                                              "median_phases": rows, "domains": per_dom}
            details.setdefault("median_spans", {})[mode] = span_med
            print()
    rep.measure("parallel", walls("par"), "one-after-another", walls("seq"), "s", LE_HALF, dict(
        details, tuap="wall time of %s provisions of example.test copies started at once" % n,
        baseline="wall time of the same provisions one after another, same tuapd"))
    rep.write(json_out)


def main(argv):
    if len(argv) == 4 and argv[1] == "phases":
        final, table = read_events(argv[2], float(argv[3]))
        for row in table:
            print(row["phase"], fmt(row.get("start_s")), fmt(row.get("done_s")),
                  fmt(row.get("seconds")))
        sys.exit(0 if final == 0 else 1)
    if len(argv) == 4 and argv[1] in ("ready", "parallel"):
        {"ready": ready, "parallel": parallel}[argv[1]](argv[2], argv[3])
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
