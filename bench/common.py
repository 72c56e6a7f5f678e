"""Helpers the benchmark drivers share: free ports, peers started fresh,
CPU time of a process, synthetic studies."""

import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TCP_NODELAY="1")
# DICOM without disk, one process per association like the node's threads:
# the receiver the node's MB/s is compared with.
CEILING = "storescp --fork --ignore"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_echo(port, aec, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if subprocess.run(["echoscu", "-aec", aec, "127.0.0.1", str(port)], env=ENV,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"receiver on port {port} did not answer C-ECHO")


def cpu_seconds(pid):
    """User+system CPU of a process and its reaped children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17
    utime, stime, cutime, cstime = (int(fields[i - 3]) for i in (14, 15, 16, 17))
    return (utime + stime + cutime + cstime) / TICKS


def count_files(folder):
    return sum(len(files) for _, _, files in os.walk(folder))


def wait_for_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


ORTHANC_DICOMWEB = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def write_orthanc_config(work, dicom_port, http_port, dicomweb=False):
    """An Orthanc 1.10 configuration on loopback ports, storing under `work`;
    with `dicomweb`, Debian's DICOMweb plugin serves /dicom-web/."""
    config = os.path.join(work, "orthanc.json")
    with open(config, "w") as f:
        json.dump({"Name": "bench", "StorageDirectory": os.path.join(work, "orthanc-db"),
                   "IndexDirectory": os.path.join(work, "orthanc-db"), "DicomAet": "ORTHANC",
                   "DicomPort": dicom_port, "HttpPort": http_port, "RemoteAccessAllowed": False,
                   "AuthenticationEnabled": False,
                   "Plugins": [ORTHANC_DICOMWEB] if dicomweb else [],
                   "DicomWeb": {"Enable": dicomweb}, "MetricsEnabled": True,
                   "StableAge": 1, "LogLevel": "default"}, f)
    return config


class orthanc_receiver:
    name = "Orthanc"

    def __init__(self, dicomweb=False):
        self.dicomweb = dicomweb

    def start(self, work):
        self.port, self.http = free_port(), free_port()
        config = write_orthanc_config(work, self.port, self.http, self.dicomweb)
        self.log = open(os.path.join(work, "orthanc.log"), "w")
        self.proc = subprocess.Popen(["Orthanc", config], env=ENV, stdout=self.log,
                                     stderr=self.log)
        self.aec = "ORTHANC"
        wait_for_http(f"http://127.0.0.1:{self.http}/system")

    def stored(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/statistics") as r:
            return json.load(r)["CountInstances"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


class storescp_receiver:
    def __init__(self, fork=False, ignore=False):
        self.fork = fork
        self.ignore = ignore
        self.name = "storescp" + (" --fork" if fork else "") + (" --ignore" if ignore else "")

    def start(self, work):
        self.out = os.path.join(work, "storescp-out")
        os.makedirs(self.out)
        self.port = free_port()
        args = ["storescp", "-od", self.out, str(self.port)]
        if self.fork:
            args.insert(1, "--fork")
        if self.ignore:
            # Receives every data set and answers success, writes nothing:
            # the DICOM-without-disk ceiling.
            args.insert(1, "--ignore")
        self.proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.aec = "ANY-SCP"
        wait_for_echo(self.port, self.aec)

    def stored(self):
        return None if self.ignore else count_files(self.out)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class dcmstreams_receiver:
    def __init__(self, binary, sync, label=""):
        self.binary = binary
        self.sync = sync
        self.name = f"dcmstreams{' ' + label if label else ''} (sync {sync})"

    def start(self, work):
        self.port, self.web = free_port(), free_port()
        self.aec = "BENCH"
        streams = os.path.join(work, "streams", "bench")
        os.makedirs(streams)
        with open(os.path.join(streams, "info.json"), "w") as f:
            json.dump({"AETitle": self.aec, "command": ["/bin/true"]}, f)
        self.data = os.path.join(work, "data")
        config = os.path.join(work, "dcmstreams.json")
        with open(config, "w") as f:
            # A long quiet period keeps job creation out of the measurement.
            json.dump({"data_dir": self.data, "streams_dir": os.path.dirname(streams),
                       "dicom": {"port": self.port, "bind": "127.0.0.1"},
                       "web": {"port": self.web},
                       "completion": {"quiet_period_s": 3600},
                       "storage": {"sync": self.sync, "reserve_free_mb": 1},
                       "log": {"level": "warning"}}, f)
        self.log = open(os.path.join(work, "node.log"), "w")
        self.proc = subprocess.Popen([self.binary, "serve", "--config", config], env=ENV,
                                     stdout=self.log, stderr=self.log)
        wait_for_echo(self.port, self.aec)

    def stored(self):
        """Instances of pending studies, as the node's API lists them (they
        wait in the journal, not as files, until their study completes)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web}/api/v1/studies") as r:
            return sum(study["instances"] for study in json.load(r)["studies"])

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()




# -- the disk: request counts and settling ---------------------------------------


def block_device_stat(folder):
    """/sys/dev/block/<major>:<minor>/stat of the device holding `folder`."""
    device = os.stat(folder).st_dev
    path = f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/stat"
    return path if os.path.exists(path) else None


def disk_counters(stat_path):
    """Write requests, flush requests and requests in flight of a block
    device (fields 5, 16 and 9 of its stat file; flushes are 0 on kernels
    before 5.5)."""
    if not stat_path:
        return {"writes": 0, "flushes": 0, "in_flight": 0}
    with open(stat_path) as f:
        fields = [int(x) for x in f.read().split()]
    return {"writes": fields[4], "flushes": fields[15] if len(fields) > 15 else 0,
            "in_flight": fields[8]}


def dirty_kb():
    with open("/proc/meminfo") as f:
        values = dict(line.split(":", 1) for line in f)
    return int(values["Dirty"].split()[0]) + int(values["Writeback"].split()[0])


def settle(stat_path, timeout=60):
    """Syncs, then waits until the device has no request in flight, no dirty
    page is left and its write count has stood still for a second: a run
    must not pay for the previous run's writeback or deletes. (Syncing again
    while waiting would itself write: only when pages are still dirty.)"""
    deadline = time.time() + timeout
    os.sync()
    still_since, last = time.time(), None
    while time.time() < deadline:
        now = disk_counters(stat_path)
        dirty = dirty_kb()
        if now["in_flight"] == 0 and dirty < 1024 and last and now["writes"] == last["writes"]:
            if time.time() - still_since >= 1.0:
                return
        else:
            still_since = time.time()
            if dirty >= 1024:
                os.sync()
        last = now
        time.sleep(0.1)

def flush_seconds(folder, count=200, block=8192):
    """Median time of one durable append on this disk: an 8 KB pwrite into
    a file written before, then fdatasync (what an answer waits for at best)."""
    path = os.path.join(folder, "flush-probe")
    size = count * block
    with open(path, "wb") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(path, os.O_WRONLY)
    times = []
    try:
        data = b"x" * block
        for i in range(count):
            start = time.perf_counter()
            os.pwrite(fd, data, i * block)
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(path)
    return sorted(times)[len(times) // 2]


def synth(binary, out, instances, rows, series=1):
    """Writes a synthetic study; returns its files, sorted, and their total size."""
    subprocess.run([binary, "synth", "--out", out, "--series", str(series), "--instances",
                    str(instances), "--rows", str(rows), "--cols", str(rows)],
                   check=True, stdout=subprocess.DEVNULL)
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs)
    return files, sum(os.path.getsize(f) for f in files)


def median_and_spread(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2], [ordered[0], ordered[-1]]


def split_study(files, parts, root):
    """One folder per association, files dealt round-robin, as hard links."""
    folders = []
    for i in range(parts):
        folder = os.path.join(root, f"part{i}")
        os.makedirs(folder)
        folders.append(folder)
    for i, path in enumerate(files):
        os.link(path, os.path.join(folders[i % parts], os.path.basename(path)))
    return folders


def driver_arguments(name, doc, add_arguments=None, with_runs=True):
    """The command line every driver shares (--quick, --runs, --build, --out
    and its own additions); checks that the binary exists. `args.binary` is
    the dcmstreams binary; `args.runs` defaults to 3 (1 with --quick)."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small cases, one run each")
    if with_runs:
        parser.add_argument("--runs", type=int, default=None,
                            help="runs per case (default 3, quick 1)")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"), help="build folder")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"),
                        help="folder for the report")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    args.binary = os.path.join(args.build, "main", "dcmstreams")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{name}: {args.binary} does not exist; run scripts/setup.sh first")
    if with_runs:
        args.runs = args.runs or (1 if args.quick else 3)
    return args


def write_report(out, kind, title, preamble, table, data):
    """Writes <out>/<date>-<host>-<kind>.{json,md}; returns the path without suffix."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    os.makedirs(out, exist_ok=True)
    base = os.path.join(out, f"{stamp}-{platform.node()}-{kind}")
    with open(base + ".json", "w") as f:
        json.dump(data, f, indent=2)
    with open(base + ".md", "w") as f:
        f.write(f"# {title} {stamp} on {platform.node()}\n\n{preamble}\n\n{table}\n")
    print(f"\nwrote {base}.json and {base}.md")
    return base

