#!/usr/bin/env python3
"""The benchmark suite: one command that builds dcmstreams in release mode,
measures it beside its peers on this machine, and writes one report.

    bench/suite.py [--quick] [--build DIR] [--out DIR]
    bench/suite.py --check REPORT.json     (is a written report well-formed?)

Parts, each against peers started fresh in the same run, all on loopback with
TCP_NODELAY=1: the machine's ceilings (loopback TCP, page-cache writes), ingest
(bench/ingest.py: storescp, storescp --fork, storescp --fork --ignore, Orthanc),
DICOMweb STOW-RS ingest beside C-STORE (bench/stow.py: Orthanc's DICOMweb plugin),
scale of cost (1 k, 10 k, 50 k instances: time per instance and peak RSS),
kernels (bench/kernels.py), sending (bench/send.py), end to end
(bench/endtoend.py) and web latency under load (bench/web.py). Writes
bench/results/<date>-<host>.{md,json} and PNG charts (gnuplot) beside them,
with the machine, the versions of every peer and the DESIGN goals, met or not.
--quick runs small cases once (CI); the full suite takes about an hour on 2 cores.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from common import CEILING, ENV, ROOT, dcmstreams_receiver, synth

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = ["ingest", "stow", "completion", "send", "endtoend", "web"]  # drivers that write <stamp>-<host>-<part>.json
MiB = 1 << 20


def first_line(command):
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def machine_facts(work):
    facts = {"host": platform.node(), "cores": os.cpu_count(), "kernel": platform.release()}
    with open("/proc/cpuinfo") as f:
        models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    facts["cpu"] = models[0] if models else platform.machine()
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                facts["memory_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
    df = subprocess.run(["df", "-T", "-B1", work], capture_output=True, text=True).stdout
    fields = df.splitlines()[-1].split()
    facts["disk"] = {"filesystem": fields[0], "type": fields[1],
                     "size_gib": round(int(fields[2]) / (1 << 30), 1)}
    return facts


def versions(binary):
    return {"dcmstreams": first_line([binary, "--version"]),
            "dcmtk": first_line(["storescp", "--version"]),
            "orthanc": first_line(["Orthanc", "--version"]),
            "wrk": first_line(["wrk", "-v"]),
            "gnuplot": first_line(["gnuplot", "--version"]),
            "compiler": first_line(["c++", "--version"]),
            "python": platform.python_version()}


# -- ceilings -------------------------------------------------------------------


def loopback_tcp_mb_per_s(total):
    """A plain socket sender and receiver on 127.0.0.1, 1 MiB writes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received = [0]

    def receive():
        connection, _ = server.accept()
        buffer = bytearray(MiB)
        while True:
            n = connection.recv_into(buffer)
            if n == 0:
                break
            received[0] += n
        connection.close()

    receiver = threading.Thread(target=receive)
    receiver.start()
    sender = socket.create_connection(server.getsockname())
    sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    chunk = b"\0" * MiB
    start = time.perf_counter()
    for _ in range(total // MiB):
        sender.sendall(chunk)
    sender.close()
    receiver.join()
    elapsed = time.perf_counter() - start
    server.close()
    assert received[0] == total
    return total / 1e6 / elapsed


def page_cache_write_mb_per_s(folder, total):
    """Writes into the page cache of the file system that holds the data
    folders (no sync): the most a receiver that does not sync can store."""
    path = os.path.join(folder, "page-cache-probe")
    chunk = b"\1" * MiB
    start = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(total // MiB):
            f.write(chunk)
    elapsed = time.perf_counter() - start
    os.remove(path)
    return total / 1e6 / elapsed


def durable_write_mb_per_s(folder, total, file_bytes=5 * MiB):
    """Files of `file_bytes` each written and fdatasync'ed, as a receiver that
    is durable before it answers must: the disk's own limit for large
    instances."""
    chunk = b"\2" * file_bytes
    start = time.perf_counter()
    for i in range(max(1, total // file_bytes)):
        path = os.path.join(folder, f"durable-probe-{i}")
        with open(path, "wb") as f:
            f.write(chunk)
            f.flush()
            os.fdatasync(f.fileno())
    elapsed = time.perf_counter() - start
    for i in range(max(1, total // file_bytes)):
        os.remove(os.path.join(folder, f"durable-probe-{i}"))
    return max(1, total // file_bytes) * file_bytes / 1e6 / elapsed


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def ceilings(work, quick):
    total = (256 if quick else 1024) * MiB
    tcp = [loopback_tcp_mb_per_s(total) for _ in range(3)]
    disk = [page_cache_write_mb_per_s(work, total) for _ in range(3)]
    durable = [durable_write_mb_per_s(work, total // 4) for _ in range(3)]
    return {"loopback_tcp_mb_per_s": median(tcp), "page_cache_write_mb_per_s": median(disk),
            "durable_write_mb_per_s": median(durable), "bytes": total}


# -- scale of cost --------------------------------------------------------------


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def scale(binary, work, counts):
    """Studies of `count` 8 KB instances into a fresh durable node with
    `dcmstreams send` over 4 associations: time per instance, peak RSS."""
    rows = []
    for count in counts:
        case = os.path.join(work, f"scale-{count}")
        os.makedirs(case)
        study = os.path.join(case, "study")
        # Series of at most 1000 instances, as modalities send them.
        series = max(1, count // 1000)
        synth(binary, study, count // series, 64, series=series)
        receiver = dcmstreams_receiver(binary, "instance")
        node_work = os.path.join(case, "node")
        os.makedirs(node_work)
        receiver.start(node_work)
        rss_idle = peak_rss_mb(receiver.proc.pid)
        start = time.perf_counter()
        sent = subprocess.run([binary, "send", "--aec", receiver.aec, "--associations", "4",
                               "127.0.0.1", str(receiver.port), study], env=ENV,
                              capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        rss = peak_rss_mb(receiver.proc.pid)
        stored = receiver.stored()
        receiver.stop()
        shutil.rmtree(case)
        if sent.returncode != 0 or stored != count:
            raise RuntimeError(f"scale {count}: stored {stored}: {sent.stdout[-300:]}"
                               f"{sent.stderr[-300:]}")
        rows.append({"instances": count, "seconds": elapsed,
                     "ms_per_instance": 1000 * elapsed / count, "peak_rss_mb": rss,
                     "idle_rss_mb": rss_idle})
        print(f"scale {count:>6} instances: {1000 * elapsed / count:.3f} ms/instance, "
              f"peak RSS {rss:.0f} MB", flush=True)
    return rows


# -- the drivers ----------------------------------------------------------------


def run_driver(part, build, out, quick, runs):
    command = [sys.executable, os.path.join(HERE, f"{part}.py"), "--build", build, "--out", out]
    if quick:
        command.append("--quick")
    if runs and part != "web":  # web.py measures one long wrk run per target
        command += ["--runs", str(runs)]
    print(f"\n== {part}: {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=True, env=ENV)
    newest = sorted(glob.glob(os.path.join(out, f"*-{part}.json")), key=os.path.getmtime)[-1]
    with open(newest) as f:
        data = json.load(f)
    with open(newest[:-5] + ".md") as f:
        text = f.read()
    # The driver's own title goes; the report gives each part a heading.
    body = text.split("\n", 1)[1].strip() if text.startswith("# ") else text.strip()
    return data, body


def run_kernels(build, out, quick):
    table = os.path.join(out, "kernels.md")
    command = [sys.executable, os.path.join(HERE, "kernels.py"), "--build", build, "--out", table]
    if quick:
        command.append("--quick")
    print(f"\n== kernels: {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=True, env=ENV)
    with open(table) as f:
        return f.read().strip()


# -- goals ----------------------------------------------------------------------


def find(ingest, size, associations, receiver, client="storescu"):
    for row in ingest["results"]:
        if (row["size"], row["associations"], row["receiver"], row["client"]) == (
                size, associations, receiver, client):
            return row
    return None


def goals(ingest, scale_rows, completion=None):
    """DESIGN's goals, each with the figure measured and whether it is met."""
    out = []
    durable = "dcmstreams (sync instance)"
    for associations in ingest["associations"]:
        node = find(ingest, "8KB", associations, durable)
        peers = ((("storescp", 1.5), ("storescp --fork", 1.2), ("Orthanc", 5.0))
                 if associations > 1 else (("Orthanc", 4.0),))
        for peer, factor in peers:
            other = find(ingest, "8KB", associations, peer)
            if node and other:
                value = node["instances_per_s"] / other["instances_per_s"]
                out.append({"goal": f">= {factor}x {peer} instances/s, 8 KB instances, "
                                    f"{associations} association(s), durable writes",
                            "measured": f"{value:.2f}x", "met": value >= factor})
        if node:
            limit = 2.0 if associations == 1 else 1.0
            out.append({"goal": f"<= {limit} disk write requests per instance, 8 KB, "
                                f"{associations} association(s), durable writes",
                        "measured": f"{node['writes_per_instance']:.2f}",
                        "met": node["writes_per_instance"] <= limit})
        ceiling = find(ingest, "8KB", associations, CEILING)
        if node and ceiling and associations == 1 and ingest.get("flush_seconds"):
            bound = 1.0 / (1.0 / ceiling["instances_per_s"] + ingest["flush_seconds"])
            value = node["instances_per_s"] / bound
            out.append({"goal": "within 1.25x of the one-association bound (no-disk time per "
                                "instance plus one flush), 8 KB, durable writes",
                        "measured": f"{100 * value:.0f} % of {bound:.0f}/s",
                        "met": value >= 0.8})
        elif node and ceiling:
            value = node["mb_per_s"] / ceiling["mb_per_s"]
            out.append({"goal": f">= 60 % of the DICOM-without-disk ceiling, 8 KB, "
                                f"{associations} associations, durable writes",
                        "measured": f"{100 * value:.0f} %", "met": value >= 0.6})
        node = find(ingest, "5MB", associations, durable)
        ceiling = find(ingest, "5MB", associations, CEILING)
        if node and ceiling:
            value = node["mb_per_s"] / ceiling["mb_per_s"]
            out.append({"goal": f">= 80 % of the DICOM-without-disk ceiling ({CEILING}) "
                                f"MB/s, 5 MB instances, {associations} association(s)",
                        "measured": f"{100 * value:.0f} %", "met": value >= 0.8})
    if completion:
        out.append({"goal": f"study complete -> job queued <= 0.5 s for "
                            f"{completion['instances']} instances",
                    "measured": f"{completion['median_seconds']:.3f} s",
                    "met": completion["median_seconds"] <= 0.5})
    if len(scale_rows) >= 2:
        small, large = scale_rows[0], scale_rows[-1]
        growth = large["peak_rss_mb"] / small["peak_rss_mb"]
        out.append({"goal": f"flat peak RSS: at {large['instances']} instances at most 1.25x "
                            f"that at {small['instances']}",
                    "measured": f"{growth:.2f}x ({small['peak_rss_mb']:.0f} -> "
                                f"{large['peak_rss_mb']:.0f} MB)", "met": growth <= 1.25})
        cost = large["ms_per_instance"] / small["ms_per_instance"]
        out.append({"goal": f"flat time per instance: at {large['instances']} instances at most "
                            f"1.25x that at {small['instances']}",
                    "measured": f"{cost:.2f}x ({small['ms_per_instance']:.3f} -> "
                                f"{large['ms_per_instance']:.3f} ms)", "met": cost <= 1.25})
    return out


# -- charts ---------------------------------------------------------------------


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def charts(base, ingest, scale_rows, work):
    """Throughput vs associations per receiver (one chart per size), and cost
    vs study size. Returns the PNG file names, relative to the report."""
    written = []
    for size in ingest["sizes"]:
        data = os.path.join(work, f"ingest-{size}.dat")
        receivers = ingest["receivers"]
        with open(data, "w") as f:
            for receiver in receivers:
                f.write(f'"{receiver}"\n')
                for associations in ingest["associations"]:
                    row = find(ingest, size, associations, receiver)
                    if row:
                        f.write(f"{associations} {row['instances_per_s']:.1f}\n")
                f.write("\n\n")
        png = f"{base}-ingest-{size}.png"
        plots = ", ".join(f"'{data}' index {i} with linespoints lw 2 title columnheader(1)"
                          for i in range(len(receivers)))
        gnuplot(f"set terminal pngcairo size 900,540 noenhanced\nset output '{png}'\n"
                f"set title 'Ingest of {size} instances (storescu client)'\n"
                f"set xlabel 'parallel associations'\nset ylabel 'instances/s'\n"
                f"set key outside right\nset grid\nset yrange [0:*]\n"
                f"set xtics ({', '.join(str(a) for a in ingest['associations'])})\n"
                f"plot {plots}\n")
        written.append(os.path.basename(png))
    if scale_rows:
        data = os.path.join(work, "scale.dat")
        with open(data, "w") as f:
            for row in scale_rows:
                f.write(f"{row['instances']} {row['ms_per_instance']:.4f} "
                        f"{row['peak_rss_mb']:.1f}\n")
        png = f"{base}-scale.png"
        gnuplot(f"set terminal pngcairo size 900,540 noenhanced\nset output '{png}'\n"
                f"set title 'Cost vs study size (8 KB instances, durable writes)'\n"
                f"set xlabel 'instances in the study'\nset logscale x\n"
                f"set ylabel 'ms per instance'\nset y2label 'peak RSS (MB)'\n"
                f"set ytics nomirror\nset y2tics\nset yrange [0:*]\nset y2range [0:*]\n"
                f"set grid\nset key top left\n"
                f"plot '{data}' using 1:2 with linespoints lw 2 title 'ms per instance', "
                f"'{data}' using 1:3 axes x1y2 with linespoints lw 2 title 'peak RSS'\n")
        written.append(os.path.basename(png))
    return written


# -- the report -----------------------------------------------------------------


def markdown(report, bodies, kernels_table):
    m, v, c = report["machine"], report["versions"], report["ceilings"]
    lines = [f"# Benchmark suite {report['stamp']} on {m['host']}"
             + (" (quick)" if report["quick"] else ""), "",
             f"**Machine**: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, data on "
             f"{m['disk']['type']} ({m['disk']['filesystem']}, {m['disk']['size_gib']} GiB), "
             f"Linux {m['kernel']}.", "",
             "**Versions**: " + "; ".join(f"{k}: {val}" for k, val in v.items()) + ".", "",
             "Every figure stands beside peers measured in the same run on the same data; "
             "all traffic on loopback with TCP_NODELAY=1; receivers start fresh for every run.",
             "", "## Goals (DESIGN)", "", "| goal | measured | met |", "|---|---|---|"]
    for g in report["goals"]:
        lines.append(f"| {g['goal']} | {g['measured']} | {'met' if g['met'] else 'not met'} |")
    lines += ["", "## Ceilings of this machine", "",
              f"- Loopback TCP, one plain socket stream: {c['loopback_tcp_mb_per_s']:.0f} MB/s",
              f"- Page-cache writes on the data file system: "
              f"{c['page_cache_write_mb_per_s']:.0f} MB/s",
              f"- DICOM without disk: the `{CEILING}` column of the ingest tables", ""]
    best = max((r for r in report["parts"]["ingest"]["results"]
                if r["receiver"] == "dcmstreams (sync instance)"),
               key=lambda r: r["mb_per_s"], default=None)
    if best:
        lines.append(
            f"The node's best durable ingest, {best['mb_per_s']:.0f} MB/s ({best['size']}, "
            f"{best['associations']} associations), is "
            f"{100 * best['mb_per_s'] / c['loopback_tcp_mb_per_s']:.0f} % of loopback TCP and "
            f"{100 * best['mb_per_s'] / c['page_cache_write_mb_per_s']:.0f} % of page-cache "
            f"writes and {100 * best['mb_per_s'] / c['durable_write_mb_per_s']:.0f} % of "
            f"durable writes.")
        lines.append("")
    lines += ["## Ingest", "", bodies["ingest"], "", "## DICOMweb STOW-RS ingest", "",
              bodies["stow"], "", "## Study completion", "", bodies["completion"], ""]
    lines += [f"![{name}]({name})" for name in report["charts"] if "ingest" in name]
    lines += ["", "## Scale of cost", "",
              "| instances | ms per instance | peak RSS (MB) | RSS idle (MB) |", "|---|---|---|---|"]
    for row in report["scale"]:
        lines.append(f"| {row['instances']} | {row['ms_per_instance']:.3f} |"
                     f" {row['peak_rss_mb']:.0f} | {row['idle_rss_mb']:.0f} |")
    lines += [""] + [f"![{name}]({name})" for name in report["charts"] if "scale" in name]
    lines += ["", "## Kernels", "", kernels_table, "", "## Sending", "", bodies["send"], "",
              "## End to end", "", bodies["endtoend"], "", "## Web API under ingest", "",
              bodies["web"], ""]
    return "\n".join(lines)


REQUIRED = {"stamp": str, "quick": bool, "machine": dict, "versions": dict, "ceilings": dict,
            "parts": dict, "scale": list, "goals": list, "charts": list}


def check(path):
    """Problems with a written report (empty when it is well-formed)."""
    problems = []
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        return [f"{path}: {e}"]
    for key, kind in REQUIRED.items():
        if not isinstance(report.get(key), kind):
            problems.append(f"{path}: '{key}' missing or not a {kind.__name__}")
    if problems:
        return problems
    for part in PARTS:
        if part not in report["parts"]:
            problems.append(f"{path}: no '{part}' results")
    if not report["goals"]:
        problems.append(f"{path}: no goals evaluated")
    for g in report["goals"]:
        if not isinstance(g.get("met"), bool) or not g.get("goal"):
            problems.append(f"{path}: malformed goal {g}")
    md = path[:-5] + ".md"
    if not os.path.exists(md):
        problems.append(f"{md}: missing")
    else:
        with open(md) as f:
            text = f.read()
        for heading in ("## Goals", "## Ceilings", "## Ingest", "## Study completion",
                        "## Scale of cost", "## Kernels",
                        "## Sending", "## End to end", "## Web API"):
            if heading not in text:
                problems.append(f"{md}: no section '{heading}'")
    if not report["charts"]:
        problems.append(f"{path}: no charts")
    for name in report["charts"]:
        png = os.path.join(os.path.dirname(path), name)
        try:
            with open(png, "rb") as f:
                if f.read(8) != b"\x89PNG\r\n\x1a\n":
                    problems.append(f"{png}: not a PNG file")
        except OSError as e:
            problems.append(f"{png}: {e}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small cases, one run each (CI)")
    parser.add_argument("--build", default=None,
                        help="use this build folder instead of building build-release")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--runs", type=int, default=None,
                        help="runs per case (default: 3, --quick 1)")
    parser.add_argument("--check", metavar="REPORT", help="only check a written report")
    args = parser.parse_args()
    if args.check:
        problems = check(args.check)
        print("\n".join(problems) if problems else f"{args.check}: well-formed")
        sys.exit(1 if problems else 0)

    build = args.build
    if build is None:
        build = os.path.join(ROOT, "build-release")
        subprocess.run([os.path.join(ROOT, "scripts", "setup.sh"), "Release"], check=True,
                       env=dict(ENV, DCMSTREAMS_BUILD_DIR=build))
    binary = os.path.join(build, "main", "dcmstreams")
    for tool in ("storescu", "storescp", "Orthanc", "wrk", "gnuplot"):
        if not shutil.which(tool):
            sys.exit(f"suite.py: {tool} is missing; run scripts/setup.sh")

    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"{stamp}-{platform.node()}")
    with tempfile.TemporaryDirectory(prefix="dcmstreams-suite-") as work:
        report = {"stamp": stamp, "quick": args.quick, "machine": machine_facts(work),
                  "versions": versions(binary)}
        print("== ceilings", flush=True)
        report["ceilings"] = ceilings(work, args.quick)
        c = report["ceilings"]
        print(f"loopback TCP {c['loopback_tcp_mb_per_s']:.0f} MB/s, page-cache writes "
              f"{c['page_cache_write_mb_per_s']:.0f} MB/s, durable writes "
              f"{c['durable_write_mb_per_s']:.0f} MB/s", flush=True)
        parts_out = os.path.join(work, "parts")
        report["parts"], bodies = {}, {}
        for part in PARTS:
            report["parts"][part], bodies[part] = run_driver(part, build, parts_out, args.quick,
                                                             args.runs)
        kernels_table = run_kernels(build, work, args.quick)
        print("\n== scale of cost", flush=True)
        report["scale"] = scale(binary, work, [500, 2000] if args.quick else [1000, 10000, 50000])
        report["goals"] = goals(report["parts"]["ingest"], report["scale"],
                                report["parts"].get("completion"))
        report["charts"] = charts(base, report["parts"]["ingest"], report["scale"], work)
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=2)
    with open(base + ".md", "w") as f:
        f.write(markdown(report, bodies, kernels_table) + "\n")
    print(f"\nwrote {base}.md, {base}.json and {len(report['charts'])} charts")
    for g in report["goals"]:
        print(f"  {'met    ' if g['met'] else 'NOT MET'}  {g['goal']}: {g['measured']}")
    problems = check(base + ".json")
    if problems:
        sys.exit("suite.py: the report is malformed:\n" + "\n".join(problems))


if __name__ == "__main__":
    main()
