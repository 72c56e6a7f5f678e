"""Soak: 32 storescu loops at once against one node for a bounded time.
Each loop sends two studies of its own in turn, so that sends find their
study complete (a new job) or still pending (copies replaced): ingest, study
completion and jobs all run the whole time. Where 32 senders outrun job
creation (2 cores), completion.max_backlog holds them back: answers wait until
job creation catches up. Every 2 s the node's RSS, open descriptors, threads,
journal segments and job creation's backlog are sampled. It must end with 0
failed stores, every acknowledged instance counted by the node, and RSS,
descriptors and threads (besides each open association's socket and thread)
flat, and so the journal's segments: the last third of the run within ± 10 %
of the middle third (medians)."""

import os
import re
import statistics
import subprocess
import threading
import time
import urllib.request

from peers import ENV, eventually, node, status_field, study

ASSOCIATIONS = 32
# completion.max_backlog: low enough that a machine whose job creation cannot
# keep up with 32 senders reaches it within the first third of a 1-minute run.
BACKLOG = 2000


def sender_loop(folders, port, deadline, log_dir, totals, lock, index):
    round_number = 0
    while time.time() < deadline:
        folder = folders[round_number % len(folders)]
        log_path = os.path.join(log_dir, f"loop{index}.log")
        with open(log_path, "w") as log:
            code = subprocess.run(["storescu", "-v", "-aec", "SOAK", "+sd", "+r", "127.0.0.1",
                                   str(port), folder], env=ENV, stdout=log,
                                  stderr=subprocess.STDOUT).returncode
        with open(log_path, errors="replace") as f:
            text = f.read()
        requests = text.count("Sending Store Request")
        stored = text.count("Received Store Response (Success)")
        with lock:
            totals["sent"] += requests
            totals["stored"] += stored
            totals["runs"] += 1
            if code != 0 or stored != requests or requests == 0:
                totals["failed"] += max(requests - stored, 1)
                totals["failures"].append(text[-400:])
        round_number += 1


def third(values, which):
    n = len(values)
    return values[n * which // 3:n * (which + 1) // 3]


def flat(samples, key, tolerance, slack):
    """The last third's median within tolerance (or slack, for small counts)
    of the middle third's."""
    middle = statistics.median(third([s[key] for s in samples], 1))
    last = statistics.median(third([s[key] for s in samples], 2))
    return middle, last, abs(last - middle) <= max(tolerance * middle, slack)


def metric(n, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{n.web}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text,
                                                        re.M))


def run(binary, work, minutes, log=print):
    root = os.path.join(work, "soak")
    os.makedirs(root)
    n = node(binary, os.path.join(root, "node"),
             config={"completion": {"quiet_period_s": 2, "max_backlog": BACKLOG},
                     "dicom": {"max_associations": 40}},
             mark=f"soak-{os.getpid()}")
    n.add_stream("soak", {"AETitle": "SOAK", "command": ["/bin/true"]})
    loops = []
    for i in range(ASSOCIATIONS):
        loops.append([study(binary, os.path.join(root, f"study{i}-{k}"), 50, series=1).folder
                      for k in range(2)])
    n.start()
    totals = {"sent": 0, "stored": 0, "failed": 0, "runs": 0, "failures": []}
    lock = threading.Lock()
    deadline = time.time() + minutes * 60
    threads = [threading.Thread(target=sender_loop, args=(loops[i], n.port, deadline, root,
                                                          totals, lock, i))
               for i in range(ASSOCIATIONS)]
    for t in threads:
        t.start()
    samples = []
    while any(t.is_alive() for t in threads):
        associations = metric(n, "dcmstreams_associations_active")
        samples.append({"t": round(time.time() - deadline + minutes * 60, 1),
                        "rss_mb": n.rss_kb() / 1024, "associations": associations,
                        # Each open association holds a thread and a socket, bounded by
                        # dicom.max_associations; how many are open at a sample's instant
                        # varies by a dozen. What must stay flat is everything else.
                        "descriptors": n.descriptors() - associations,
                        "threads": n.threads() - associations,
                        "journal_segments": metric(n, "dcmstreams_journal_segments"),
                        "journal_live_records": metric(n, "dcmstreams_journal_live_records"),
                        "studies_pending": metric(n, "dcmstreams_studies_pending"),
                        "jobs_queued": metric(n, "dcmstreams_stream_queue_depth"),
                        "jobs_created": metric(n, "dcmstreams_jobs_created_total"),
                        "intake_backlog": metric(n, "dcmstreams_intake_backlog_instances"),
                        "ingest_wait_s": metric(n, "dcmstreams_ingest_wait_seconds_total"),
                        "rss_anon_mb": status_field(n.proc.pid, "RssAnon") / 1024})
        time.sleep(2)
    for t in threads:
        t.join()
    # What the node counted once the last answers are in.
    counted = metric(n, "dcmstreams_instances_received_total")
    # Only the jobs of the last round may still be queued or running.
    settled = eventually(lambda: not n.get("/api/v1/studies")["studies"], 30, 0.5)
    problems = []
    if totals["failed"]:
        problems.append(f"{totals['failed']} stores failed, e.g. {totals['failures'][0]!r}")
    if int(counted) != totals["stored"]:
        problems.append(f"the node counted {int(counted)} instances received, storescu was "
                        f"told {totals['stored']} were stored")
    if not settled:
        problems.append("studies still pending 30 s after the last store")
    figures = {}
    for key, tolerance, slack in (("rss_mb", 0.10, 2.0), ("descriptors", 0.10, 4),
                                  ("threads", 0.10, 4), ("journal_segments", 0.10, 2)):
        middle, last, ok = flat(samples, key, tolerance, slack)
        figures[key] = (middle, last)
        if not ok:
            problems.append(f"{key} not flat: middle third {middle:.1f}, last third {last:.1f}")
    n.stop()
    result = {"associations": ASSOCIATIONS, "minutes": minutes, "runs": totals["runs"],
              "stored": totals["stored"], "failed": totals["failed"],
              "instances_per_s": round(totals["stored"] / (minutes * 60), 1),
              "rss_middle_mb": figures["rss_mb"][0], "rss_last_mb": figures["rss_mb"][1],
              "rss_peak_mb": max(s["rss_mb"] for s in samples),
              "descriptors": f"{figures['descriptors'][0]:.0f} → {figures['descriptors'][1]:.0f}",
              "threads": f"{figures['threads'][0]:.0f} → {figures['threads'][1]:.0f}",
              "journal_segments": f"{figures['journal_segments'][0]:.0f} → "
                                  f"{figures['journal_segments'][1]:.0f}",
              "backlog_peak": max(s["intake_backlog"] for s in samples),
              "ingest_wait_s": round(samples[-1]["ingest_wait_s"], 1),
              "samples": samples, "ok": not problems, "problems": problems}
    log(f"soak: {totals['stored']} instances in {totals['runs']} associations over "
        f"{minutes} min ({result['instances_per_s']}/s), {totals['failed']} failed; RSS "
        f"{figures['rss_mb'][0]:.1f} → {figures['rss_mb'][1]:.1f} MB (peak "
        f"{result['rss_peak_mb']:.1f}); besides associations, descriptors "
        f"{result['descriptors']}; threads {result['threads']}; journal segments {result['journal_segments']}; job creation's "
        f"backlog at most {result['backlog_peak']:.0f} (limit {BACKLOG}), answers waited "
        f"{result['ingest_wait_s']} s in all: "
        f"{'ok' if not problems else 'NOT OK: ' + '; '.join(problems)}")
    return result
