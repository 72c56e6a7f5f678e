#!/usr/bin/env python3
"""End-to-end latency: from the last instance of a 200-instance study being
acknowledged to the last result instance stored at a storescp destination,
through a kernel stream (gaussian) and a routing rule. The node's overhead is
that time minus the quiet period and the job's own run time (kernels and
writing the derived series), which the job records.

    bench/endtoend.py [--quick] [--runs N] [--build DIR] [--out DIR]
"""

import datetime
import json
import os
import subprocess
import tempfile
import time

from common import (ENV, driver_arguments, free_port, write_report, median_and_spread, storescp_receiver, synth,
                    wait_for_echo)

QUIET_S = 1.0


def iso_ms(text):
    when = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def one_run(binary, study, expected, rows):
    with tempfile.TemporaryDirectory(prefix="dcmstreams-e2e-") as work:
        destination = storescp_receiver()
        destination.start(os.path.join(work, "destination"))
        port = free_port()
        streams = os.path.join(work, "streams", "smooth")
        os.makedirs(streams)
        with open(os.path.join(streams, "info.json"), "w") as f:
            json.dump({"AETitle": "SMOOTH", "pipeline": [{"kernel": "gaussian", "sigma_mm": 1}]}, f)
        with open(os.path.join(work, "routing.json"), "w") as f:
            json.dump({"routing": [{"send": [{"success": {
                "IP": "127.0.0.1", "PORT": destination.port, "AETitleTo": "ANY-SCP"}}]}]}, f)
        config = os.path.join(work, "dcmstreams.json")
        with open(config, "w") as f:
            json.dump({"data_dir": "data", "streams_dir": "streams", "routing_file": "routing.json",
                       "dicom": {"port": port, "bind": "127.0.0.1"},
                       "web": {"port": free_port()},
                       "completion": {"quiet_period_s": QUIET_S},
                       "storage": {"reserve_free_mb": 1}, "log": {"level": "warning"}}, f)
        log = open(os.path.join(work, "node.log"), "w")
        node = subprocess.Popen([binary, "serve", "--config", config], env=ENV, stdout=log,
                                stderr=log)
        try:
            wait_for_echo(port, "SMOOTH")
            subprocess.run(["storescu", "-aec", "SMOOTH", "+sd", "+r", "127.0.0.1", str(port),
                            study], env=ENV, check=True, stdout=subprocess.DEVNULL)
            received = time.time()
            deadline = received + 300
            while destination.stored() < expected and time.time() < deadline:
                time.sleep(0.005)
            delivered = time.time()
            if destination.stored() < expected:
                raise RuntimeError(f"only {destination.stored()} of {expected} results arrived")
            with open(os.path.join(work, "data", "jobs", "1", "info.json")) as f:
                info = json.load(f)
        finally:
            node.terminate()
            node.wait()
            log.close()
            destination.stop()
    run_s = iso_ms(info["finished"]) - iso_ms(info["started"])
    total_s = delivered - received
    return {"total_s": total_s, "job_run_s": run_s,
            "overhead_s": total_s - QUIET_S - run_s}


def main():
    args = driver_arguments("endtoend.py", __doc__)
    binary = args.binary
    runs = args.runs
    count, rows = (50, 64) if args.quick else (200, 256)
    with tempfile.TemporaryDirectory(prefix="dcmstreams-e2e-data-") as data:
        files, _ = synth(binary, os.path.join(data, "study"), count, rows)
        samples = [one_run(binary, os.path.join(data, "study"), len(files), rows)
                   for _ in range(runs)]
    summary = {key: median_and_spread([s[key] for s in samples])
               for key in ("total_s", "job_run_s", "overhead_s")}
    table = ("| study | quiet period | last received -> last delivered | job run (kernel + "
             "writing) | node overhead |\n|---|---|---|---|---|\n"
             f"| {count} x {rows}x{rows} | {QUIET_S:.1f} s | {summary['total_s'][0]:.3f} s |"
             f" {summary['job_run_s'][0]:.3f} s | {summary['overhead_s'][0]:.3f} s"
             f" ({summary['overhead_s'][1][0]:.3f}-{summary['overhead_s'][1][1]:.3f}) |")
    print(table)
    write_report(args.out, "endtoend", "End-to-end latency",
                 f"Median of {runs} run(s); overhead = total - quiet period - job run.", table,
                 {"quick": args.quick, "runs": samples, "summary": summary})


if __name__ == "__main__":
    main()
