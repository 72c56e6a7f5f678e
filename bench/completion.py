#!/usr/bin/env python3
"""Study completion: the time from a study being complete (its quiet period
over) to its job being queued, with every instance written out of the
journal into the job's INPUT folder, synced and committed. A study of 1000
8 KB instances (200 with --quick) is sent with storescu over 4 associations
to a node with durable writes; the two moments come from the node's log.

    bench/completion.py [--quick] [--runs N] [--build DIR] [--out DIR]
"""

import datetime
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

from common import (ENV, block_device_stat, driver_arguments, free_port, settle, split_study,
                    synth, wait_for_echo, write_report)

QUIET_S = 1.0
STAMP = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z)"


def seconds_of(stamp):
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def one_run(binary, folders, expected):
    with tempfile.TemporaryDirectory(prefix="dcmstreams-completion-") as work:
        port = free_port()
        streams = os.path.join(work, "streams", "copy")
        os.makedirs(streams)
        with open(os.path.join(streams, "info.json"), "w") as f:
            json.dump({"AETitle": "COPY", "command": ["/bin/true"]}, f)
        config = os.path.join(work, "dcmstreams.json")
        with open(config, "w") as f:
            json.dump({"data_dir": os.path.join(work, "data"),
                       "streams_dir": os.path.dirname(streams),
                       "dicom": {"port": port, "bind": "127.0.0.1"}, "web": {"port": free_port()},
                       "completion": {"quiet_period_s": QUIET_S},
                       "storage": {"sync": "instance", "reserve_free_mb": 1},
                       "log": {"level": "info"}}, f)
        log_path = os.path.join(work, "node.log")
        with open(log_path, "w") as log:
            node = subprocess.Popen([binary, "serve", "--config", config], env=ENV, stdout=log,
                                    stderr=log)
        try:
            wait_for_echo(port, "COPY")
            settle(block_device_stat(work))
            senders = [subprocess.Popen(["storescu", "-aec", "COPY", "+sd", "+r", "127.0.0.1",
                                         str(port), folder], env=ENV, stdout=subprocess.DEVNULL)
                       for folder in folders]
            if any(s.wait() != 0 for s in senders):
                raise RuntimeError("storescu failed")
            deadline = time.time() + 60
            complete = queued = None
            while time.time() < deadline and not queued:
                time.sleep(0.05)
                text = open(log_path).read()
                complete = re.search(STAMP + r" info +assembler: study .* is complete", text)
                queued = re.search(STAMP + r" info +assembler: job \d+ queued .*, (\d+) instances",
                                   text)
            if not (complete and queued):
                raise RuntimeError("no job in the log:\n" + open(log_path).read()[-2000:])
            if int(queued.group(2)) != expected:
                raise RuntimeError(f"the job has {queued.group(2)} of {expected} instances")
            return seconds_of(queued.group(1)) - seconds_of(complete.group(1))
        finally:
            node.terminate()
            node.wait()


def main():
    args = driver_arguments("completion.py", __doc__)
    count = 200 if args.quick else 1000
    with tempfile.TemporaryDirectory(prefix="dcmstreams-completion-data-") as data:
        files, _ = synth(args.binary, os.path.join(data, "study"), count, 64)
        folders = split_study(files, 4, os.path.join(data, "split"))
        samples = [one_run(args.binary, folders, count) for _ in range(args.runs)]
    middle = statistics.median(samples)
    print(f"{count} instances: study complete -> job queued {1000 * middle:.0f} ms "
          f"(min {1000 * min(samples):.0f}, max {1000 * max(samples):.0f})")
    table = ("| instances | complete → queued (median) | min | max |\n|---|---|---|---|\n"
             f"| {count} | {1000 * middle:.0f} ms | {1000 * min(samples):.0f} ms | "
             f"{1000 * max(samples):.0f} ms |")
    write_report(args.out, "completion", "Study completion",
                 f"{count} × 8 KB instances, storescu over 4 associations, durable writes; "
                 f"{args.runs} run(s). The time includes writing every instance out of the "
                 "journal, linking INPUT, one syncfs and the commit record.", table,
                 {"instances": count, "runs": args.runs, "seconds": samples,
                  "median_seconds": middle})


if __name__ == "__main__":
    main()
