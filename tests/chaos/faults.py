"""Faults: what the world does to a node — a full disk at each place that
writes, a locked or read-only database, destinations that hang, crawl or
vanish from the network, stream programs that misbehave, a clock that jumps.
Each case states what the node must do and what it did.

Cases that mount a tmpfs or create a network namespace need root
(CAP_SYS_ADMIN, CAP_NET_ADMIN); CI runs as root. Without it they fail with
that reason rather than pass unseen."""

import os
import sqlite3
import subprocess
import time

from peers import (destination, eventually, free_port, marked_processes, node, run_cases,
                   storescu, study)

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
COPY = {"AETitle": "COPY", "command": ["sh", "-c", 'cp "$0"/* "$1"/']}


class small_disk:
    """A tmpfs of `mb` MiB mounted at `folder` (a data folder that can fill up)."""

    def __init__(self, folder, mb):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", folder],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise PermissionError(f"mounting a tmpfs needs root: {out.stderr.strip()}")

    def fill(self, leave_bytes=0):
        """A filler file that leaves about `leave_bytes` free."""
        path = os.path.join(self.folder, "filler")
        stat = os.statvfs(self.folder)
        free = stat.f_bavail * stat.f_frsize
        with open(path, "ab") as f:
            block = b"\0" * (1 << 20)
            remaining = free - leave_bytes
            try:
                while remaining > 0:
                    f.write(block[:min(len(block), remaining)])
                    remaining -= len(block)
                f.flush()
            except OSError:
                pass  # full: that is the point
        return path

    def free_bytes(self):
        stat = os.statvfs(self.folder)
        return stat.f_bavail * stat.f_frsize

    def set_read_only(self, read_only):
        subprocess.run(["mount", "-o", f"remount,{'ro' if read_only else 'rw'}", self.folder],
                       check=True)

    def unmount(self):
        subprocess.run(["umount", "-l", self.folder], capture_output=True)


def send(node_, the_study, root, name, aec="COPY", prefix=()):
    """storescu sends the study; returns the SOP Instance UIDs acknowledged
    and the storescu log."""
    sender = storescu(the_study.folder, node_.port, aec, os.path.join(root, name + ".log"),
                      prefix)
    sender.wait(300)
    acknowledged = {the_study.uid_of[p] for p in sender.acknowledged()}
    with open(sender.log_path, errors="replace") as f:
        return acknowledged, f.read()


def finished_jobs(node_, count, timeout):
    def done():
        jobs = node_.jobs()
        return len([j for j in jobs if j["state"] not in ("queued", "running")]) >= count
    return eventually(done, timeout, 0.1)


# -- the cases ---------------------------------------------------------------------


def disk_full_at_ingest(c):
    disk = c.disk(48)
    n = c.node(config={"storage": {"journal_segment_mb": 2}, "completion": {"quiet_period_s": 3}},
               streams={"copy": COPY})
    n.start()
    big = c.study("big", 60, rows=512)  # 60 × 512 KB into about 6 MB of free space
    disk.fill(leave_bytes=6 << 20)
    acknowledged, log = send(n, big, c.root, "big")
    refused = log.count("OutOfResources")
    alive = n.echo()
    os.remove(os.path.join(disk.folder, "filler"))
    small = c.study("small", 10)
    again, _ = send(n, small, c.root, "small")
    finished_jobs(n, 2, 30)
    lost = len((acknowledged | again) - n.input_uids())
    c.lost = lost
    c.observed = (f"{len(acknowledged)} of 60 stored, {refused} refused with 0xA700 (Out of "
                  f"Resources); node answered C-ECHO while full: {alive}; after space came back "
                  f"{len(again)} of 10 stored; {lost} acknowledged lost")
    return refused > 0 and alive and len(again) == 10 and lost == 0


def disk_full_at_job_output(c):
    c.disk(48)
    fill = {"AETitle": "FILL", "command": ["sh", "-c", 'dd if=/dev/zero of="$1/big" bs=1M '
                                           'count=200 2>&1']}
    n = c.node(config={"storage": {"journal_segment_mb": 2, "scrub_interval_s": 1}},
               streams={"fill": fill, "copy": COPY})
    n.start()
    send(n, c.study("first", 5), c.root, "first", aec="FILL")
    finished_jobs(n, 1, 30)
    job = n.jobs()[0]
    alive = n.echo()
    # Its OUTPUT filled the disk: the node must still record the failure,
    # and ingest must go on without anyone deleting files by hand.
    again, _ = send(n, c.study("later", 10), c.root, "later")
    finished_jobs(n, 2, 30)
    c.lost = len(again - n.input_uids())
    c.observed = (f"job {job['state']}: {job.get('message')!r}; node answered C-ECHO: {alive}; "
                  f"{len(again)} of 10 stored after, {c.lost} lost")
    return job["state"] == "failed" and "exit status" in (job.get("message") or "") and \
        alive and len(again) == 10 and c.lost == 0


def one_job_after(c, n, acknowledged):
    """Waits for the study's job once the obstacle is gone; (jobs, whether it
    is exactly one successful job with every acknowledged instance)."""
    finished_jobs(n, 1, 30)
    time.sleep(1)  # a second job, if one were made, would show by now
    jobs = n.jobs()
    c.lost = len(acknowledged - n.input_uids())
    return jobs, len(jobs) == 1 and jobs[0]["state"] == "success" and c.lost == 0


def disk_full_at_job_creation(c):
    disk = c.disk(32)
    n = c.node(config={"storage": {"journal_segment_mb": 1},
                       "completion": {"quiet_period_s": 2}}, streams={"copy": COPY})
    n.start()
    acknowledged, _ = send(n, c.study("s", 20), c.root, "s")
    disk.fill(0)  # the disk fills before the quiet period ends: the job cannot be created
    failed = eventually(lambda: "cannot create the job for" in n.log(), 20, 0.1)
    os.remove(os.path.join(disk.folder, "filler"))
    jobs, one = one_job_after(c, n, acknowledged)
    c.observed = (f"creation failed and was logged: {bool(failed)}; then {len(jobs)} job(s) "
                  f"{[j['state'] for j in jobs]}, job folders {len(n.job_folders())}; "
                  f"{c.lost} of {len(acknowledged)} lost")
    return failed and one and len(n.job_folders()) == 1


def sqlite_locked(c):
    n = c.node(streams={"copy": COPY})
    n.start()
    lock = sqlite3.connect(os.path.join(n.data, "dcmstreams.db"), timeout=30,
                           isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    acknowledged, _ = send(n, c.study("s", 20), c.root, "s")
    time.sleep(8)  # longer than the node's busy timeout (5 s)
    during = n.echo()
    lock.execute("ROLLBACK")
    lock.close()
    jobs, one = one_job_after(c, n, acknowledged)
    c.observed = (f"{len(acknowledged)} of 20 stored while the database was locked 8 s; node "
                  f"answered C-ECHO: {during}; then {len(jobs)} job(s) "
                  f"{[j['state'] for j in jobs]}; {c.lost} lost")
    return one and during


def read_only_data(c):
    """A data folder that went read-only (a remount after disk errors; a
    running node's open journal makes the kernel refuse the remount, so the
    node meets it at its next start)."""
    disk = c.disk(64)
    n = c.node(config={"storage": {"journal_segment_mb": 2}}, streams={"copy": COPY})
    n.start()
    before, _ = send(n, c.study("before", 10), c.root, "before")
    finished_jobs(n, 1, 30)
    n.stop()
    disk.set_read_only(True)
    try:
        n.start(wait=False)
        try:
            code = n.proc.wait(30)
        except subprocess.TimeoutExpired:
            code = None
        last = [line for line in n.log().splitlines() if " error " in line or "fatal" in line]
    finally:
        if n.running():
            n.stop()
        else:
            n.log_file.close()
        disk.set_read_only(False)
    n.start()
    after, _ = send(n, c.study("after", 10), c.root, "after")
    finished_jobs(n, 2, 30)
    c.lost = len((before | after) - n.input_uids())
    said = last[-1].split("  ", 1)[-1] if last else "nothing"
    c.observed = (f"start on the read-only folder: exit {code}, said {said!r}; writable again: "
                  f"{len(n.jobs())} jobs, {len(after)} of 10 stored; {c.lost} lost")
    refused = code not in (None, 0) and "read-only file system" in said.lower()
    return refused and len(after) == 10 and c.lost == 0


def routed(c, destinations, config=None, instances=20, prefix=()):
    """A node whose copy stream's OUTPUT goes to `destinations`."""
    rule = {"RouteDirectory": "OUTPUT",
            "send": [{".*": {"IP": "127.0.0.1", "PORT": d.port, "AETitleTo": d.aec}}
                     for d in destinations]}
    base = {"sending": {"timeout_s": 2, "retry_initial_s": 0.5, "retry_factor": 1}}
    base.update(config or {})
    n = c.node(config=base, streams={"copy": COPY}, routing={"routing": [rule]})
    return n


def destination_that_never_answers(c):
    folder = os.path.join(c.root, "silent")
    silent = destination(folder, extra=["--sleep-during", "600"])
    c.peers.append(silent)
    n = routed(c, [silent])
    n.start()
    sent = c.study("s", 10)
    send(n, sent, c.root, "s")
    started = time.time()
    timed_out = eventually(lambda: any(s["attempts"] >= 1 and s["state"] in ("retrying", "failed")
                                       for s in n.sends()), 30, 0.1)
    waited = time.time() - started
    message = n.sends()[0]["message"] if n.sends() else ""
    silent.stop()
    healthy = destination(folder, port=silent.port)
    c.peers.append(healthy)
    delivered = eventually(lambda: set(sent.bytes_of) <= set(healthy.received()), 60, 0.2)
    c.observed = (f"attempt ended {waited:.1f} s after the study arrived: {message!r}; "
                  f"delivered once the destination answered: {bool(delivered)}")
    return bool(timed_out) and waited < 20 and bool(delivered)


def slow_destination_beside_a_fast_one(c):
    slow = destination(os.path.join(c.root, "slow"), extra=["--sleep-after", "1"])
    fast = destination(os.path.join(c.root, "fast"))
    c.peers += [slow, fast]
    n = routed(c, [slow, fast], config={"sending": {"timeout_s": 30}})
    n.start()
    sent = c.study("s", 20)
    send(n, sent, c.root, "s")
    fast_done = eventually(lambda: len(fast.received()) >= 20, 30, 0.05)
    slow_then = slow.count()
    slow_done = eventually(lambda: len(slow.received()) >= 20, 60, 0.2)
    c.observed = (f"fast destination had all 20 while the slow one had {slow_then}; the slow one "
                  f"got all 20 too: {bool(slow_done)}")
    return bool(fast_done) and slow_then < 10 and bool(slow_done)


def network_namespace(c, name):
    """A network namespace with its loopback up, deleted with the case; returns
    its name and the prefix that runs a command inside it."""
    namespace = f"dcmstreams-chaos-{name}-{os.getpid()}"
    out = subprocess.run(["ip", "netns", "add", namespace], capture_output=True, text=True)
    if out.returncode != 0:
        raise PermissionError(f"creating a network namespace needs root: {out.stderr.strip()}")
    c.cleanups.append(lambda: subprocess.run(["ip", "netns", "delete", namespace]))
    inside = ["ip", "netns", "exec", namespace]
    subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
    return namespace, inside


def network_blackhole(c):
    namespace, inside = network_namespace(c, "blackhole")
    target = destination(os.path.join(c.root, "target"), prefix=inside)
    c.peers.append(target)
    n = routed(c, [target], instances=100)
    n.netns = namespace
    n.start()
    sent = c.study("s", 100)
    send(n, sent, c.root, "s", prefix=inside)
    eventually(lambda: target.count() >= 10, 60, 0.01)
    subprocess.run([*inside, "ip", "link", "set", "lo", "down"], check=True)
    cut_at = target.count()
    time.sleep(5)
    subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
    delivered = eventually(lambda: set(sent.bytes_of) <= set(target.received()), 90, 0.2)
    received = target.received()
    twice = sum(count - 1 for count in received.values())
    c.observed = (f"the link went down after {cut_at} of 100 results and came back 5 s later; "
                  f"delivered: {bool(delivered)}; sent twice: {twice}")
    return bool(delivered) and twice <= 1


def worker_cut_off(c):
    namespace, inside = network_namespace(c, "cluster")
    port = free_port()
    n = c.node(config={"cluster": {"port": port, "heartbeat_s": 0.2, "lost_after_s": 2}},
               streams={"copy": {"AETitle": "COPY", "command": ["true"]}})
    n.netns = namespace
    n.start()
    with open(os.path.join(c.root, "worker.log"), "w") as log:
        worker = subprocess.Popen([*inside, c.binary, "worker", "--join", f"127.0.0.1:{port}",
                                   "--name", "cut"], env=n.env, stdout=log,
                                  stderr=subprocess.STDOUT)
    c.cleanups.append(lambda: (worker.kill(), worker.wait()))

    def state():
        try:
            return {w["name"]: w["state"] for w in n.get("/api/v1/workers")["workers"]}.get("cut")
        except OSError:
            return None

    joined = eventually(lambda: state() == "joined", 30, 0.1)
    subprocess.run([*inside, "ip", "link", "set", "lo", "down"], check=True)
    cut_at = time.monotonic()
    # The API is on the same loopback: the log says it.
    lost = eventually(lambda: "worker cut (pid" in n.log() and "no answer" in n.log(), 15, 0.05)
    lost_after = time.monotonic() - cut_at
    subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
    back = eventually(lambda: state() == "joined", 30, 0.1)
    c.observed = (f"joined: {bool(joined)}; lost {lost_after:.1f} s after the link went down "
                  f"(lost_after_s 2): {bool(lost)}; back once it came up: {bool(back)}")
    return bool(joined) and bool(lost) and lost_after <= 2 + 1.5 and bool(back)


def program(c, name, script, extra=None):
    """A node with one stream running `script`; one study sent, its job waited for."""
    info = {"AETitle": "PROG", "command": ["sh", "-c", script]}
    info.update(extra or {})
    n = c.node(streams={name: info})
    n.start()
    send(n, c.study("s", 4), c.root, "s", aec="PROG")
    finished_jobs(n, 1, 60)
    job = n.jobs()[0]
    return n, job


def program_floods_stdout(c):
    n, job = program(c, "flood", "head -c 200000000 /dev/zero | tr '\\0' x; echo done",
                     {"log_limit_mb": 1})
    log = os.path.join(n.job_folders()[job["id"]], "processing.log")
    size = os.path.getsize(log)
    with open(log, errors="replace") as f:
        text = f.read()
    said = "left out of this log" in text
    c.observed = f"job {job['state']}; processing.log {size} bytes; says what was left out: {said}"
    return job["state"] == "success" and size < (1 << 20) + 4096 and said


def program_leaves_children(c):
    n, job = program(c, "litter", "sleep 300 & setsid sleep 300 & (sleep 300 &); "
                     "nohup sleep 300 >/dev/null 2>&1 & exit 0")
    left = eventually(lambda: not marked_processes(c.mark, {n.proc.pid}), 5) or \
        marked_processes(c.mark, {n.proc.pid})
    c.observed = f"job {job['state']}; processes left: {[] if left is True else left}"
    return job["state"] == "success" and left is True


def program_ignores_sigterm(c):
    start = time.time()
    n, job = program(c, "stubborn", "trap '' TERM; while :; do sleep 0.2; done",
                     {"timeout_s": 1})
    took = time.time() - start
    left = marked_processes(c.mark, {n.proc.pid})
    c.observed = (f"job {job['state']} after {took:.1f} s: {job.get('message')!r}; "
                  f"processes left: {left}")
    return job["state"] == "failed" and "timeout" in (job.get("message") or "") and \
        took < 15 and not left


def clock_jump(c):
    clock_file = os.path.join(c.root, "faketime")
    with open(clock_file, "w") as f:
        f.write("+0\n")
    n = c.node(config={"completion": {"quiet_period_s": 3}}, streams={"copy": COPY},
               env={"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": clock_file,
                    "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    n.start()
    first = c.study("first", 10)
    parts = first.parts(2)
    a = storescu(parts[0], n.port, "COPY", os.path.join(c.root, "a.log"))
    a.wait()
    with open(clock_file, "w") as f:
        f.write("+2h\n")  # forward: a wall-clock timer would complete the study now
    time.sleep(2)
    b = storescu(parts[1], n.port, "COPY", os.path.join(c.root, "b.log"))
    b.wait()
    finished_jobs(n, 1, 30)
    with open(clock_file, "w") as f:
        f.write("-2h\n")  # back: a wall-clock timer would wait two hours
    time.sleep(1.5)
    second = c.study("second", 4)
    sent_at = time.time()
    send(n, second, c.root, "second")
    completed = finished_jobs(n, 2, 30)
    took = time.time() - sent_at
    jobs = sorted(n.jobs(), key=lambda j: j["id"])
    counts = [j.get("instances") for j in jobs]
    c.observed = (f"jobs {counts} (the first study, sent in two parts around a 2 h jump forward, "
                  f"must be one job of 10); after a jump back the next study became a job in "
                  f"{took:.1f} s (quiet period 3 s)")
    return len(jobs) == 2 and counts[0] == 10 and bool(completed) and took < 10


CASES = [
    ("disk full at ingest", "stores refused with 0xA700, the node keeps answering, nothing "
     "acknowledged lost, ingest resumes when space is back", disk_full_at_ingest),
    ("disk full at job output", "the job fails naming the exit status and is recorded (its "
     "OUTPUT removed to free the disk); ingest goes on", disk_full_at_job_output),
    ("disk full at job creation", "creation fails and is logged, then exactly one job with every "
     "instance once space is back, no ghost", disk_full_at_job_creation),
    ("SQLite locked by another process", "instances still stored; one job once the lock goes",
     sqlite_locked),
    ("data folder read-only (database included)", "the node refuses to start and says the "
     "folder is read-only; once writable, it starts with everything it had", read_only_data),
    ("destination accepts and never answers", "the attempt ends after sending.timeout_s and is "
     "retried; delivered once it answers", destination_that_never_answers),
    ("slow destination beside a fast one", "the fast one does not wait for the slow one",
     slow_destination_beside_a_fast_one),
    ("network blackhole (lo down in a namespace)", "detected by the timeout, retried, delivered "
     "with at most the one in flight twice", network_blackhole),
    ("worker cut off from the head (lo down in a namespace)", "the head counts it lost within "
     "cluster.lost_after_s; it is back when the link returns", worker_cut_off),
    ("stream program floods stdout", "processing.log capped at log_limit_mb and says so; the job "
     "succeeds", program_floods_stdout),
    ("stream program leaves children", "every process of the job ends with it",
     program_leaves_children),
    ("stream program ignores SIGTERM", "killed after the grace period, job failed naming the "
     "timeout, no process left", program_ignores_sigterm),
    ("wall clock jumps 2 h forward and back", "quiet periods run on the monotonic clock",
     clock_jump),
]


class context:
    """What one case owns; `close` takes it all down."""

    def __init__(self, binary, root, mark):
        self.binary, self.root, self.mark = binary, root, mark
        os.makedirs(root)
        self.nodes, self.peers, self.disks, self.cleanups = [], [], [], []
        self.observed, self.lost = "", 0

    def disk(self, mb):
        d = small_disk(os.path.join(self.root, "node", "data"), mb)
        self.disks.append(d)
        return d

    def node(self, **options):
        n = node(self.binary, os.path.join(self.root, "node"), mark=self.mark, **options)
        self.nodes.append(n)
        return n

    def study(self, name, instances, rows=64):
        return study(self.binary, os.path.join(self.root, name), instances, rows=rows, series=1)

    def close(self):
        for n in self.nodes:
            n.stop()
        for p in self.peers:
            p.stop()
        for d in self.disks:
            d.unmount()
        for cleanup in self.cleanups:
            cleanup()


def run(binary, work, only, log=print):
    return run_cases("fault", CASES, lambda number: context(
        binary, os.path.join(work, f"fault-{number}"), f"fault-{number}-{os.getpid()}"), only, log)
