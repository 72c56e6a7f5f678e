"""What the campaign's parts share: a dcmstreams node in a folder of its
own that can be killed and started again, storescp as a destination that
keeps every copy it receives, studies and their acknowledgements, and the
facts a checker needs (SOP Instance UIDs, data set bytes, processes left)."""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from common import ENV, free_port  # noqa: E402

# Every process the campaign's nodes start carries this in its environment
# (the node passes its environment on to stream programs): a process that
# still has it once its node is gone is an orphan.
MARK = "DCMSTREAMS_CAMPAIGN"


def eventually(check, timeout, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    return check()


# -- DICOM facts, read without DCMTK -------------------------------------------


def dataset_bytes(path):
    """The bytes after the file meta group (what a receiver must keep as
    sent; the meta group is the receiver's own)."""
    with open(path, "rb") as f:
        content = f.read()
    if len(content) < 144 or content[128:132] != b"DICM":
        raise ValueError(f"{path}: no DICOM preamble")
    (group_length,) = struct.unpack_from("<I", content, 140)
    return content[144 + group_length:]


def sop_instance_uid(path):
    """(0008,0018) of an explicit or implicit little endian data set."""
    data = dataset_bytes(path)
    at = data.find(b"\x08\x00\x18\x00UI")
    if at >= 0:
        (length,) = struct.unpack_from("<H", data, at + 6)
        return data[at + 8:at + 8 + length].rstrip(b"\0 ").decode()
    at = data.find(b"\x08\x00\x18\x00")
    if at < 0:
        raise ValueError(f"{path}: no SOP Instance UID")
    (length,) = struct.unpack_from("<I", data, at + 4)
    return data[at + 8:at + 8 + length].rstrip(b"\0 ").decode()


def files_under(folder):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)


class study:
    """A synthetic study written by `dcmstreams synth`, by SOP Instance UID."""

    def __init__(self, binary, folder, instances, rows=64, series=2):
        subprocess.run([binary, "synth", "--out", folder, "--series", str(series), "--instances",
                        str(max(1, instances // series)), "--rows", str(rows), "--cols",
                        str(rows)], check=True, stdout=subprocess.DEVNULL)
        self.folder = folder
        self.files = files_under(folder)
        self.uid_of = {path: sop_instance_uid(path) for path in self.files}
        self.bytes_of = {self.uid_of[path]: dataset_bytes(path) for path in self.files}

    def parts(self, count):
        """Folders of hard links, files dealt round-robin: one per association."""
        folders = []
        for i in range(count):
            folder = f"{self.folder}-part{i}"
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            folders.append(folder)
        for i, path in enumerate(self.files):
            link = os.path.join(folders[i % count], f"{i:05d}.dcm")
            os.link(path, link)
            self.uid_of[link] = self.uid_of[path]
        return folders


class storescu:
    """DCMTK's storescu sending one folder; knows which files the receiver
    acknowledged from its verbose log (a success answer follows the file)."""

    def __init__(self, folder, port, aec, log_path, prefix=()):
        self.folder = folder
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([*prefix, "storescu", "-v", "-aec", aec, "+sd", "+r",
                                      "127.0.0.1",
                                      str(port), folder], env=ENV, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def acknowledged(self):
        files, current = [], None
        with open(self.log_path, errors="replace") as f:
            for line in f:
                if line.startswith("I: Sending file: "):
                    current = line[len("I: Sending file: "):].strip()
                elif "Received Store Response (Success)" in line and current:
                    files.append(current)
                    current = None
        return files

    def wait(self, timeout=120):
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()


# -- peers ----------------------------------------------------------------------


class destination:
    """storescp with unique file names: every copy it receives stays, so the
    checker can count how often each instance arrived. `extra` adds options
    (`--sleep-after 1` answers one instance a second)."""

    def __init__(self, folder, extra=(), port=None, prefix=()):
        self.out = folder
        os.makedirs(folder, exist_ok=True)
        self.port = port or free_port()
        self.aec = "CHAOSDEST"
        self.log = open(folder + ".log", "a")
        self.proc = subprocess.Popen([*prefix, "storescp", "-uf", *extra, "-aet", self.aec,
                                      "-od", folder, str(self.port)], env=ENV, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if not eventually(lambda: subprocess.run(
                [*prefix, "echoscu", "-to", "5", "-aec", self.aec, "127.0.0.1", str(self.port)],
                env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0,
                20):
            raise RuntimeError(f"storescp on port {self.port} did not answer C-ECHO")

    def received(self):
        """SOP Instance UID → copies received."""
        counts = {}
        for path in files_under(self.out):
            try:
                uid = sop_instance_uid(path)
            except (ValueError, struct.error):
                uid = "unreadable:" + os.path.basename(path)
            counts[uid] = counts.get(uid, 0) + 1
        return counts

    def count(self):
        return len(os.listdir(self.out))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait()
        self.log.close()


class node:
    """`dcmstreams serve` with its own data, streams and routing under
    `root`, on free loopback ports."""

    def __init__(self, binary, root, config=None, streams=None, routing=None, env=None,
                 mark="campaign"):
        self.binary = binary
        self.root = root
        self.data = os.path.join(root, "data")
        self.streams_dir = os.path.join(root, "streams")
        os.makedirs(self.streams_dir, exist_ok=True)
        self.port, self.web = free_port(), free_port()
        base = {"data_dir": "data", "streams_dir": "streams", "routing_file": "routing.json",
                "dicom": {"port": self.port, "bind": "127.0.0.1"}, "web": {"port": self.web},
                "completion": {"quiet_period_s": 1},
                "storage": {"sync": "instance", "reserve_free_mb": 1},
                "sending": {"retry_initial_s": 0.5, "retry_factor": 1, "max_attempts": 100}}
        for key, value in (config or {}).items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key].update(value)
            else:
                base[key] = value
        self.config = os.path.join(root, "dcmstreams.json")
        with open(self.config, "w") as f:
            json.dump(base, f, indent=2)
        for name, info in (streams or {}).items():
            self.add_stream(name, info)
        with open(os.path.join(root, "routing.json"), "w") as f:
            json.dump(routing or {"routing": []}, f, indent=2)
        self.env = dict(ENV, **(env or {}), **{MARK: mark})
        self.log_path = os.path.join(root, "node.log")
        self.proc = None
        self.starts = 0
        self.netns = None  # the network namespace it runs in, if any

    def add_stream(self, name, info, files=None):
        folder = os.path.join(self.streams_dir, name)
        os.makedirs(folder, exist_ok=True)
        for file_name, (text, mode) in (files or {}).items():
            path = os.path.join(folder, file_name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, mode)
        with open(os.path.join(folder, "info.json"), "w") as f:
            json.dump(info, f)

    def start(self, wait=True, prefix=()):
        prefix = [*self.prefix(), *prefix]
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write(f"--- start {self.starts}\n")
        self.log_file = open(self.log_path, "a")
        self.proc = subprocess.Popen([*prefix, self.binary, "serve", "--config", self.config],
                                     env=self.env, cwd=self.root, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        if wait and not eventually(self.ready, 30):
            raise RuntimeError(f"node in {self.root} did not start:\n{self.log()[-2000:]}")
        return self

    def ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"node exited with {self.proc.returncode}:\n{self.log()[-2000:]}")
        try:
            return self.get("/readyz", raw=True) is not None
        except OSError:
            return False

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log_file.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log_file.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def get(self, path, raw=False, timeout=10):
        url = f"http://127.0.0.1:{self.web}{path}"
        if self.netns:
            # The node's loopback is the namespace's: ask from inside it.
            out = subprocess.run(["ip", "netns", "exec", self.netns, "curl", "-sf", "-m",
                                  str(timeout), url], capture_output=True)
            if out.returncode != 0:
                raise OSError(f"{url} in {self.netns}: curl exit {out.returncode}")
            body = out.stdout
        else:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                body = r.read()
        return body if raw else json.loads(body)

    def post(self, path):
        request = urllib.request.Request(f"http://127.0.0.1:{self.web}{path}", method="POST",
                                         headers={"Origin": f"http://127.0.0.1:{self.web}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def input_uids(self):
        """SOP Instance UIDs in every job's INPUT."""
        return {os.path.basename(p)[:-len(".dcm")] for folder in self.job_folders().values()
                for p in files_under(os.path.join(folder, "INPUT"))}

    def echo(self):
        return subprocess.run([*self.prefix(), "echoscu", "-to", "5", "-aec", "DCMSTREAMS",
                               "127.0.0.1", str(self.port)], env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def prefix(self):
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def jobs(self):
        return self.get("/api/v1/jobs?limit=1000")["jobs"]

    def sends(self):
        return self.get("/api/v1/sends?limit=1000")["sends"]

    def job_folders(self):
        folder = os.path.join(self.data, "jobs")
        if not os.path.isdir(folder):
            return {}
        return {int(name): os.path.join(folder, name) for name in os.listdir(folder)
                if name.isdigit()}

    def rss_kb(self):
        return status_field(self.proc.pid, "VmRSS")

    def threads(self):
        return status_field(self.proc.pid, "Threads")

    def descriptors(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def marked_processes(mark, spare=()):
    """Processes whose environment carries MARK=mark, other than `spare`."""
    found = []
    needle = f"{MARK}={mark}".encode() + b"\0"
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in spare:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read() + b"\0":
                    with open(f"/proc/{name}/cmdline", "rb") as c:
                        found.append((int(name), c.read().replace(b"\0", b" ").decode().strip()))
        except OSError:
            pass
    return found


def run_cases(kind, cases, make_context, only, log=print):
    """Runs (name, must, case) triples whose name contains `only`, each with a
    context of its own (`make_context(number)`, which has `observed`, `lost`,
    `root` and `close()`); a case that raises is a finding, not the end of the
    campaign. Keeps the folder of each case that failed."""
    results = []
    for number, (name, must, case) in enumerate(cases):
        if only and only not in name:
            continue
        c = make_context(number)
        started = time.time()
        try:
            ok = bool(case(c))
        except Exception as error:
            ok, c.observed = False, f"{c.observed} the case broke: {error!r}"
        finally:
            c.close()
        row = {"name": name, "must": must, "observed": c.observed, "ok": ok, "lost": c.lost,
               "seconds": round(time.time() - started, 1),
               "problems": [] if ok else [f"{name}: {c.observed}"]}
        results.append(row)
        log(f"{kind} {name}: {'ok' if ok else 'NOT OK'} ({row['seconds']} s): {c.observed}")
        if ok:
            shutil.rmtree(c.root, ignore_errors=True)
    return results
