#!/usr/bin/env python3
"""STOW-RS ingest benchmark: the same synthetic study stored by DICOMweb
STOW-RS into dcmstreams (POST /dicomweb/{AE}/studies) and into Orthanc's
DICOMweb plugin (POST /dicom-web/studies), beside C-STORE (storescu) into
both, in the same run, on loopback with TCP_NODELAY=1.

STOW-RS client: curl, one process per stream, each posting prebuilt
multipart/related bodies of up to 50 instances one after another on one
kept-alive connection (the bodies are written before the clock starts, so
the client does no DICOM work). C-STORE client: storescu, one process per
association. Streams and associations: 1 and 4. Every receiver starts fresh;
the disk is settled before and after each run; receivers take turns round by
round; every run checks the receiver's count of stored instances (the node's
API, Orthanc's statistics). Writes bench/results/<date>-<host>-stow.{json,md}.

    bench/stow.py [--quick] [--runs N] [--build DIR] [--out DIR]
"""

import os
import platform
import shutil
import sys
import tempfile

from common import (ORTHANC_DICOMWEB, block_device_stat, dcmstreams_receiver, driver_arguments,
                    orthanc_receiver, settle, split_study, synth, write_report)
from ingest import run_case, summarize

# Label -> rows (= cols) of a 16-bit image, instances in a full and a quick run.
SIZES = {"8KB": (64, 1000, 100), "512KB": (512, 200, 20)}
BATCH = 50
BOUNDARY = "dcmstreams-bench-boundary"
NODE_STOW, ORTHANC_STOW = "dcmstreams STOW-RS", "Orthanc STOW-RS"
NODE_CSTORE, ORTHANC_CSTORE = "dcmstreams C-STORE", "Orthanc C-STORE"


class named:
    """A receiver under another name, with the way it is sent to."""

    def __init__(self, receiver, name, stow_path=None):
        self.receiver, self.name, self.stow_path = receiver, name, stow_path

    def start(self, work):
        self.receiver.start(work)
        self.proc, self.port, self.aec = self.receiver.proc, self.receiver.port, self.receiver.aec
        http = getattr(self.receiver, "web", None) or getattr(self.receiver, "http", None)
        self.url = f"http://127.0.0.1:{http}{self.stow_path}" if self.stow_path else None

    def stored(self):
        return self.receiver.stored()

    def stop(self):
        self.receiver.stop()


def write_bodies(folder, out):
    """multipart/related bodies of up to BATCH instances of `folder`'s files."""
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    bodies = []
    for start in range(0, len(files), BATCH):
        path = os.path.join(out, f"{os.path.basename(folder)}-{start // BATCH}.multipart")
        with open(path, "wb") as body:
            for file in files[start:start + BATCH]:
                body.write(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode())
                with open(file, "rb") as f:
                    body.write(f.read())
                body.write(b"\r\n")
            body.write(f"--{BOUNDARY}--\r\n".encode())
        bodies.append(path)
    return bodies


def curl_command(url, bodies):
    """One curl process posting `bodies` one after another on one connection;
    --fail makes any answer but 2xx an error."""
    command = ["curl"]
    for i, body in enumerate(bodies):
        if i:
            command.append("--next")
        command += ["-sS", "--fail", "-o", "/dev/null", "-H",
                    f'Content-Type: multipart/related; type="application/dicom"; '
                    f"boundary={BOUNDARY}",
                    "-H", "Accept: application/dicom+json",
                    # No "Expect: 100-continue": Orthanc 1.10.1 does not answer it, and
                    # curl would wait a second per request (the node answers it).
                    "-H", "Expect:", "--data-binary", f"@{body}", url]
    return command


def markdown(results, sizes, stream_counts):
    names = [NODE_STOW, ORTHANC_STOW, NODE_CSTORE, ORTHANC_CSTORE]
    out = ["| size | streams | " + " | ".join(names) +
           " | node STOW / Orthanc STOW | node STOW / node C-STORE |",
           "|---|---|" + "---|" * (len(names) + 2)]
    for size in sizes:
        for streams in stream_counts:
            row = {r["receiver"]: r for r in results
                   if r["size"] == size and r["streams"] == streams}
            rate = lambda name: row.get(name, {}).get("instances_per_s", 0)
            cells = [f"{rate(n):.0f}/s" for n in names]
            ratio = lambda a, b: f"{rate(a) / rate(b):.2f}x" if rate(b) else "-"
            out.append(f"| {size} | {streams} | " + " | ".join(cells) +
                       f" | {ratio(NODE_STOW, ORTHANC_STOW)} | {ratio(NODE_STOW, NODE_CSTORE)} |")
    out += ["", "Per receiver: instances/s min–median–max; per instance: disk write requests, "
            "CPU ms of the receiver.", "", "| size | streams | receiver | inst/s | MB/s | writes "
            "| CPU ms |", "|---|---|---|---|---|---|---|"]
    for r in results:
        low, high = r["spread"]
        out.append(f"| {r['size']} | {r['streams']} | {r['receiver']} | {low:.0f}–"
                   f"{r['instances_per_s']:.0f}–{high:.0f} | {r['mb_per_s']:.1f} | "
                   f"{r['writes_per_instance']:.2f} | {r['cpu_ms_per_instance']:.3f} |")
    return "\n".join(out)


def main():
    args = driver_arguments("stow.py", __doc__)
    binary, runs = args.binary, args.runs
    for tool in ("curl", "storescu", "Orthanc"):
        if not shutil.which(tool):
            sys.exit(f"stow.py: {tool} is missing; run scripts/setup.sh")
    if not os.path.exists(ORTHANC_DICOMWEB):
        sys.exit("stow.py: Orthanc's DICOMweb plugin is missing; run scripts/setup.sh "
                 "(orthanc-dicomweb)")
    sizes = ["8KB"] if args.quick else list(SIZES)
    stream_counts = [1] if args.quick else [1, 4]
    receivers = [named(dcmstreams_receiver(binary, "instance"), NODE_STOW, "/dicomweb/BENCH/studies"),
                 named(orthanc_receiver(dicomweb=True), ORTHANC_STOW, "/dicom-web/studies"),
                 named(dcmstreams_receiver(binary, "instance"), NODE_CSTORE),
                 named(orthanc_receiver(), ORTHANC_CSTORE)]
    results = []
    with tempfile.TemporaryDirectory(prefix="dcmstreams-bench-stow-") as data:
        disk = block_device_stat(data)
        settle(disk)
        for size in sizes:
            rows, full, quick = SIZES[size]
            study = os.path.join(data, f"study-{size}")
            files, bytes_total = synth(binary, study, quick if args.quick else full, rows)
            runs_folder = os.path.join(data, f"runs-{size}")
            os.makedirs(runs_folder)
            for streams in stream_counts:
                folders = split_study(files, streams, os.path.join(data, f"split-{size}-{streams}"))
                bodies_folder = os.path.join(data, f"bodies-{size}-{streams}")
                os.makedirs(bodies_folder)
                bodies = [write_bodies(folder, bodies_folder) for folder in folders]

                def commands(receiver):
                    if receiver.url:
                        return [curl_command(receiver.url, b) for b in bodies]
                    return [["storescu", "-aec", receiver.aec, "+sd", "+r", "127.0.0.1",
                             str(receiver.port), folder] for folder in folders]

                samples = {r.name: [] for r in receivers}
                for _ in range(runs):
                    for receiver in receivers:
                        samples[receiver.name].append(
                            run_case(receiver, lambda: commands(receiver), len(files),
                                     bytes_total, runs_folder, disk))
                for receiver in receivers:
                    row = {"size": size, "instances": len(files), "streams": streams,
                           "receiver": receiver.name, **summarize(samples[receiver.name]),
                           "runs": samples[receiver.name]}
                    results.append(row)
                    print(f"{size:>6} x{len(files):<5} {streams} streams {receiver.name:<20}"
                          f" {row['instances_per_s']:8.0f} inst/s"
                          f" ({row['spread'][0]:.0f}-{row['spread'][1]:.0f})"
                          f" {row['mb_per_s']:8.1f} MB/s {row['writes_per_instance']:5.2f} writes",
                          flush=True)
            shutil.rmtree(runs_folder)
            settle(disk)
    table = markdown(results, sizes, stream_counts)
    print()
    print(table)
    write_report(args.out, "stow", "STOW-RS ingest benchmark",
                 f"{os.cpu_count()} cores, TCP_NODELAY=1, {runs} run(s) per receiver taken in "
                 f"turns, disk settled before and after each; STOW-RS bodies of up to {BATCH} "
                 "instances posted by curl; C-STORE by storescu; medians unless a spread is given.",
                 table,
                 {"machine": {"host": platform.node(), "cores": os.cpu_count()},
                  "quick": args.quick, "runs": runs, "sizes": sizes, "streams": stream_counts,
                  "batch": BATCH, "results": results})


if __name__ == "__main__":
    main()
