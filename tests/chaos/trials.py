"""Crash trials: the node is killed with SIGKILL at a random moment of one
phase of a study's way through it (ingest, job creation, processing,
sending), started again on the same data, and a checker proves that nothing
it acknowledged was lost or doubled.

Each trial runs in a fresh folder: a node with one stream (a program that
copies INPUT to OUTPUT in two steps, leaves a child behind, and takes about a
second), a routing rule that sends OUTPUT to storescp (unique file names, so
every copy counts), and a study of `instances` instances sent by two storescu
processes at once."""

import os
import shutil
import time

from peers import (dataset_bytes, destination, eventually, files_under, marked_processes, node,
                   storescu, study)

PHASES = ["ingest", "creation", "processing", "sending"]

WORK_SH = """#!/bin/sh
# Copies the study to OUTPUT in two halves a moment apart, so that a kill can
# land mid-job, and leaves a child behind that must not outlive the job.
sleep 300 &
set -- "$1" "$2" $(ls "$1")
input=$1 output=$2
shift 2
half=$(($# / 2))
i=0
for name in "$@"; do
  i=$((i + 1))
  [ "$i" -eq "$half" ] && sleep 0.5
  cp "$input/$name" "$output/$name"
done
sleep 0.5
"""


class trial:
    def __init__(self, binary, work, number, phase, instances, rng):
        self.phase = phase
        self.rng = rng
        self.root = os.path.join(work, f"trial-{phase}-{number}")
        os.makedirs(self.root)
        self.mark = f"trial-{phase}-{number}-{os.getpid()}"
        self.study = study(binary, os.path.join(self.root, "study"), instances)
        self.destination = destination(os.path.join(self.root, "destination"))
        routing = {"routing": [{"RouteDirectory": "OUTPUT", "send": [
            {".*": {"IP": "127.0.0.1", "PORT": self.destination.port,
                    "AETitleTo": self.destination.aec}}]}]}
        self.node = node(binary, os.path.join(self.root, "node"), routing=routing, mark=self.mark)
        self.node.add_stream("work", {"AETitle": "CHAOS", "command": ["./work.sh"]},
                             files={"work.sh": (WORK_SH, 0o755)})
        self.senders = []
        self.problems = []
        self.killed_at = None

    # -- the kill ---------------------------------------------------------------

    def acknowledged(self):
        files = [path for sender in self.senders for path in sender.acknowledged()]
        return {self.study.uid_of[path] for path in files}

    def send_study(self):
        parts = self.study.parts(2)
        self.senders = [storescu(folder, self.node.port, "CHAOS",
                                 os.path.join(self.root, f"storescu-{i}.log"))
                        for i, folder in enumerate(parts)]

    def kill_now(self, what):
        self.killed_at = what
        self.node.kill()

    def run(self):
        """Runs the study through the node with one kill in this trial's phase."""
        self.node.start()
        self.send_study()
        n = len(self.study.files)
        if self.phase == "ingest":
            # After a random number of acknowledged instances.
            target = self.rng.randint(1, n - 1)
            if not eventually(lambda: len(self.acknowledged()) >= target, 60, 0.002):
                self.problems.append("the study was not acknowledged in 60 s")
            self.kill_now(f"after {len(self.acknowledged())} of {n} acknowledged")
        for sender in self.senders:
            sender.wait()
        if self.phase == "creation":
            # From the log line that completes the study, within the time
            # it takes to become a job (the journal written out, linked, the
            # row committed, the job queued).
            if not eventually(lambda: " is complete (" in self.node.log(), 30, 0.002):
                self.problems.append("the study did not complete in 30 s")
            time.sleep(self.rng.uniform(0, 0.25))
            self.kill_now("while the study became a job")
        elif self.phase == "processing":
            started = eventually(lambda: self.job_state() == "running", 30, 0.01)
            if not started:
                self.problems.append("the job did not start in 30 s")
            time.sleep(self.rng.uniform(0, 1.5))
            self.kill_now("while the stream's program ran")
        elif self.phase == "sending":
            target = self.rng.randint(1, n - 1)
            if not eventually(lambda: self.destination.count() >= target, 60, 0.002):
                self.problems.append("the results did not reach the destination in 60 s")
            self.kill_now(f"after {self.destination.count()} of {n} results stored")
        # The keeper of a running program hears its node die and kills the job.
        orphans = eventually(lambda: not marked_processes(self.mark), 5) or \
            marked_processes(self.mark)
        if orphans is not True:
            self.problems.append(f"processes outlived the killed node: {orphans}")
        self.node.start()
        self.settle()
        self.check()
        self.node.stop()
        left = marked_processes(self.mark)
        if left:
            self.problems.append(f"processes outlived the stopped node: {left}")
        self.destination.stop()
        return self.report()

    # -- after the restart ----------------------------------------------------------

    def job_state(self):
        try:
            jobs = self.node.jobs()
        except OSError:
            return None
        return jobs[0]["state"] if jobs else None

    def settle(self):
        """Waits until the study's job has finished and every send is done."""
        def done():
            jobs = self.node.jobs()
            if not jobs or any(j["state"] in ("queued", "running") for j in jobs):
                return False
            sends = self.node.sends()
            return sends and all(s["state"] in ("done", "failed") for s in sends) and \
                not self.node.get("/api/v1/studies")["studies"]
        if not eventually(done, 90, 0.1):
            self.problems.append("the node did not finish the study within 90 s of its restart")

    def check(self):
        acknowledged = self.acknowledged()
        self.acknowledged_count = len(acknowledged)
        jobs = self.node.jobs()
        folders = self.node.job_folders()
        # Exactly one job per study, and no row without its folder nor a folder without its row.
        if len(jobs) != 1:
            self.problems.append(f"{len(jobs)} jobs for one study: "
                                 f"{[(j['id'], j['state']) for j in jobs]}")
        ids = {j["id"] for j in jobs}
        ghosts = ids - set(folders)
        strays = set(folders) - ids
        if ghosts:
            self.problems.append(f"job rows without a folder: {sorted(ghosts)}")
        if strays:
            self.problems.append(f"job folders without a row: {sorted(strays)}")
        self.lost = self.changed = 0
        for job in jobs:
            if job["state"] != "success":
                self.problems.append(f"job {job['id']} is {job['state']}: {job.get('message')}")
            folder = folders.get(job["id"])
            if not folder:
                continue
            stored = {}
            for path in files_under(os.path.join(folder, "INPUT")):
                uid = os.path.basename(path)[:-len(".dcm")]
                stored[uid] = path
                if uid not in self.study.bytes_of:
                    self.problems.append(f"INPUT holds an instance nobody sent: {uid}")
                elif dataset_bytes(path) != self.study.bytes_of[uid]:
                    self.changed += 1
                    self.problems.append(f"INPUT/{uid}.dcm differs from what was sent")
            missing = acknowledged - set(stored)
            self.lost += len(missing)
            if missing:
                self.problems.append(f"{len(missing)} acknowledged instances missing, e.g. "
                                     f"{sorted(missing)[0]}")
            outputs = {os.path.basename(p): p for p in files_under(os.path.join(folder, "OUTPUT"))}
            for name, path in outputs.items():
                original = stored.get(name[:-len(".dcm")])
                if original is None or dataset_bytes(path) != dataset_bytes(original):
                    self.problems.append(f"OUTPUT/{name} is not a whole copy of its input")
            if len(outputs) != len(stored):
                self.problems.append(f"OUTPUT has {len(outputs)} files for {len(stored)} inputs")
            self.results = set(stored)
        partial = [p for p in files_under(os.path.join(self.node.data, "incoming", ".tmp"))
                   if os.path.getsize(p) > 0]
        if partial:
            self.problems.append(f"partial files left: {partial[:3]}")
        # Every result delivered; a kill mid-send may repeat the one in flight.
        received = self.destination.received()
        results = getattr(self, "results", set())
        undelivered = results - set(received)
        self.undelivered = len(undelivered)
        if undelivered:
            self.problems.append(f"{len(undelivered)} results never reached the destination")
        self.repeated = sum(count - 1 for count in received.values())
        allowed = 1 if self.phase == "sending" else 0
        if self.repeated > allowed:
            self.problems.append(f"{self.repeated} results arrived twice (at most {allowed} "
                                 f"may: the one in flight)")
        foreign = set(received) - results
        if foreign:
            self.problems.append(f"the destination got {len(foreign)} instances not in OUTPUT")

    def report(self):
        return {"phase": self.phase, "killed": self.killed_at,
                "instances": len(self.study.files),
                "acknowledged": getattr(self, "acknowledged_count", 0),
                "lost": getattr(self, "lost", 0), "changed": getattr(self, "changed", 0),
                "undelivered": getattr(self, "undelivered", 0),
                "repeated": getattr(self, "repeated", 0), "problems": self.problems,
                "folder": self.root}


def run(binary, work, per_phase, instances, rng, log=print):
    rows = []
    for number in range(per_phase):
        for phase in PHASES:
            t = trial(binary, work, number, phase, instances, rng)
            try:
                row = t.run()
            except Exception as error:  # a trial that breaks is a finding, not the end
                t.problems.append(f"the trial broke: {error!r}")
                row = t.report()
            finally:
                if t.node.running():
                    t.node.stop()
                t.destination.stop()
            rows.append(row)
            verdict = "ok" if not row["problems"] else "PROBLEM: " + "; ".join(row["problems"])
            log(f"trial {phase:<10} {number:>3}: killed {row['killed']}; "
                f"{row['acknowledged']} acknowledged, {row['lost']} lost: {verdict}")
            if not row["problems"]:
                shutil.rmtree(t.root, ignore_errors=True)
    return rows
