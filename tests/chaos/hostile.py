"""Hostile peers: the ways a broken or malicious client talks to the node's
DICOM and HTTP ports, each with the answer it must get. Every case ends by
checking that the node still serves a real client (C-ECHO, or storescu, or
GET /healthz) and keeps what it acknowledged."""

import base64
import io
import os
import resource
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
import zipfile

from peers import eventually, node, run_cases, storescu, study

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


# -- DICOM upper layer PDUs, built by hand (PS3.8 9.3) -------------------------------


def item(kind, payload):
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def associate_rq(called, calling="HOSTILE", abstract=VERIFICATION, max_pdu=16384):
    context = item(0x20, bytes([1, 0, 0, 0]) + item(0x30, abstract.encode()) +
                   item(0x40, EXPLICIT_LE.encode()))
    user = item(0x50, item(0x51, struct.pack(">I", max_pdu)))
    body = (struct.pack(">HH", 1, 0) + called.encode().ljust(16) + calling.encode().ljust(16) +
            bytes(32) + item(0x10, b"1.2.840.10008.3.1.1.1") + context + user)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def read_pdu(sock, timeout=5):
    """(type, body) of the next PDU, or (None, why) when the peer closed or said nothing."""
    sock.settimeout(timeout)
    try:
        header = b""
        while len(header) < 6:
            chunk = sock.recv(6 - len(header))
            if not chunk:
                return None, "closed"
            header += chunk
        kind, _, length = struct.unpack(">BBI", header)
        body = b""
        while len(body) < length:
            chunk = sock.recv(min(65536, length - len(body)))
            if not chunk:
                return None, "closed"
            body += chunk
        return kind, body
    except socket.timeout:
        return None, "silent"
    except ConnectionResetError:
        return None, "reset"


PDU_NAMES = {0x02: "A-ASSOCIATE-AC", 0x03: "A-ASSOCIATE-RJ", 0x04: "P-DATA-TF",
             0x06: "A-RELEASE-RP", 0x07: "A-ABORT"}


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def answer_to(port, data, timeout=5):
    """Sends `data` on a new connection; the name of the PDU that comes back."""
    with connect(port) as sock:
        try:
            sock.sendall(data)
        except OSError as error:
            return f"refused while sending ({error.strerror})"
        kind, _ = read_pdu(sock, timeout)
        return PDU_NAMES.get(kind, kind) if kind else _


def associated(port, called="CHAOS", abstract=VERIFICATION):
    sock = connect(port)
    sock.sendall(associate_rq(called, abstract=abstract))
    kind, body = read_pdu(sock)
    if kind != 0x02:
        sock.close()
        raise RuntimeError(f"association not accepted: {PDU_NAMES.get(kind, kind)}")
    return sock


# -- HTTP ---------------------------------------------------------------------------


def http(n, method, path, body=None, headers=None, timeout=10):
    request = urllib.request.Request(f"http://127.0.0.1:{n.web}{path}", data=body, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def healthy(n):
    try:
        return http(n, "GET", "/healthz", timeout=5)[0] == 200
    except OSError:
        return False


def raw_http(port, data, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        try:
            return sock.recv(200).split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
        except socket.timeout:
            return "silent"


# -- the cases ---------------------------------------------------------------------------


def garbage_on_the_dicom_port(c):
    answers = {answer_to(c.n.port, os.urandom(2048)) for _ in range(5)}
    answers.add(answer_to(c.n.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    c.observed = f"answers {sorted(map(str, answers))}; C-ECHO after: {c.n.echo()}"
    return answers <= {"A-ABORT", "closed", "reset"} and c.n.echo()


def oversize_association_request(c):
    header = struct.pack(">BBI", 0x01, 0, 0x7FFFFFF0)
    rss_before = c.n.rss_kb()
    answer = answer_to(c.n.port, header + bytes(1024))
    grew = (c.n.rss_kb() - rss_before) / 1024
    c.observed = f"{answer}; RSS grew {grew:.1f} MB; C-ECHO after: {c.n.echo()}"
    return answer in ("A-ABORT", "A-ASSOCIATE-RJ", "closed", "reset") and grew < 50 and c.n.echo()


def oversize_data_pdu(c):
    sock = associated(c.n.port)
    rss_before = c.n.rss_kb()
    sock.sendall(struct.pack(">BBI", 0x04, 0, 0xFFFFFFF0) + bytes(4096))
    kind, why = read_pdu(sock)
    sock.close()
    grew = (c.n.rss_kb() - rss_before) / 1024
    answer = PDU_NAMES.get(kind, kind) if kind else why
    c.observed = f"{answer}; RSS grew {grew:.1f} MB; C-ECHO after: {c.n.echo()}"
    return answer in ("A-ABORT", "closed", "reset") and grew < 50 and c.n.echo()


def half_open_connections(c):
    # More silent connections than association slots: none may take one.
    socks = [connect(c.n.port) for _ in range(40)]
    echo_meanwhile = c.n.echo()
    closed = eventually(lambda: all(read_pdu(s, 0.01)[1] in ("closed", "reset")
                                    for s in socks), 10, 0.2)
    for s in socks:
        s.close()
    c.observed = (f"40 silent connections (32 slots): C-ECHO meanwhile {echo_meanwhile}; all "
                  f"closed by the node within acse_timeout_s (3 s): {bool(closed)}")
    return echo_meanwhile and bool(closed)


def trickling_association_request(c):
    request = associate_rq("CHAOS")
    sock = connect(c.n.port)
    start, sent = time.time(), 0
    try:
        for byte in request[:40]:
            sock.send(bytes([byte]))
            sent += 1
            time.sleep(0.25)
    except OSError:
        pass
    kind, why = read_pdu(sock, 5)
    took = time.time() - start
    sock.close()
    c.observed = (f"a byte every 250 ms: dropped after {sent} bytes and {took:.1f} s "
                  f"({PDU_NAMES.get(kind, kind) if kind else why}); C-ECHO after: {c.n.echo()}")
    return took < 10 and c.n.echo()


def association_aborted_mid_store(c):
    # A real store, then an abort in the middle of a second data set.
    sent = c.study("s", 3)
    ok = storescu(sent.folder, c.n.port, "CHAOS", os.path.join(c.root, "s.log")).wait() == 0
    sock = associated(c.n.port, abstract=CT_IMAGE)
    # P-DATA-TF with one command fragment that is not the last: the store never completes.
    pdv = struct.pack(">IBB", 2 + 100, 1, 0x01) + bytes(100)
    sock.sendall(struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv)
    sock.sendall(struct.pack(">BBIBBBB", 0x07, 0, 4, 0, 0, 0, 0))
    sock.close()
    time.sleep(0.5)
    pending = c.n.get("/api/v1/studies")["studies"]
    instances = sum(s["instances"] for s in pending)
    c.observed = (f"the study stored before: {ok}; after the abort {instances} instances pending "
                  f"(3 expected); C-ECHO after: {c.n.echo()}")
    return ok and instances == 3 and c.n.echo()


def associations_beyond_the_limit(c):
    socks = [associated(c.n.port) for _ in range(32)]
    answer = answer_to(c.n.port, associate_rq("CHAOS"))
    for s in socks:
        s.sendall(struct.pack(">BBIBBBB", 0x07, 0, 4, 0, 0, 0, 0))
        s.close()
    echo_after = eventually(c.n.echo, 5, 0.2)
    c.observed = f"the 33rd association: {answer}; C-ECHO once the others ended: {echo_after}"
    return answer == "A-ASSOCIATE-RJ" and echo_after


def steady_descriptors(n):
    readings, deadline = [], time.time() + 10
    while (len(readings) < 4 or len(set(readings[-4:])) > 1) and time.time() < deadline:
        readings.append(n.descriptors())
        time.sleep(0.25)
    return readings[-1]


def many_idle_http_connections(c):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
    before = steady_descriptors(c.n)  # the node makes spare files for a moment after its start
    socks = [socket.create_connection(("127.0.0.1", c.n.web)) for _ in range(1000)]
    start = time.time()
    answered = healthy(c.n)
    took = time.time() - start
    for s in socks:
        s.close()
    settled = eventually(lambda: c.n.descriptors() <= before + 5, 10, 0.2)
    c.observed = (f"1000 idle connections: /healthz answered {answered} in {took * 1000:.0f} ms; "
                  f"descriptors back to {c.n.descriptors()} (were {before}): {bool(settled)}")
    return answered and took < 2 and bool(settled)


def descriptors_run_out(c):
    """The node started with 128 descriptors; 200 connections on each port."""
    n = c.node(prefix=["prlimit", "--nofile=128"])
    cpu = lambda: sum(int(x) for x in  # noqa: E731
                      open(f"/proc/{n.proc.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
    # A node that just started makes its spare files for a moment: wait until
    # it is idle, so that what is measured is what the flood costs.
    deadline = time.time() + 20
    while time.time() < deadline:
        before = cpu()
        time.sleep(1)
        if (cpu() - before) / os.sysconf("SC_CLK_TCK") < 0.05:
            break
    socks = []
    for port in (n.web, n.port):
        for _ in range(100):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
    time.sleep(0.5)  # the connections that got a descriptor are accepted by now
    start_cpu = cpu()
    time.sleep(3)
    spent = (cpu() - start_cpu) / os.sysconf("SC_CLK_TCK")
    for s in socks:
        s.close()
    back = eventually(lambda: healthy(n) and n.echo(), 15, 0.2)
    sent = c.study("after", 2)
    stored = storescu(sent.folder, n.port, "CHAOS", os.path.join(c.root, "after.log")).wait() == 0
    c.observed = (f"{len(socks)} connections against 128 descriptors: CPU {spent:.2f} s in 3 s "
                  f"held; HTTP and C-ECHO answered once they closed: {bool(back)}; a study "
                  f"stored to its stream after: {stored}")
    return spent < 0.3 and bool(back) and stored


def slow_http_headers(c):
    sock = socket.create_connection(("127.0.0.1", c.n.web))
    start, closed = time.time(), False
    try:
        sock.send(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(200):
            sock.send(b"X-a: b\r\n")
            time.sleep(0.1)
            sock.settimeout(0.01)
            try:
                if sock.recv(100) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
    except OSError:
        closed = True
    took = time.time() - start
    sock.close()
    c.observed = (f"a header line every 100 ms: closed by the node: {closed} after {took:.1f} s "
                  f"(web read timeout 3 s); /healthz meanwhile: {healthy(c.n)}")
    return closed and took < 10 and healthy(c.n)


def oversize_headers_and_url(c):
    status_headers, _, _ = http(c.n, "GET", "/healthz", headers={"X-Big": "a" * 16384})
    line = raw_http(c.n.web, b"GET /" + b"a" * 16384 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    c.observed = f"16 KB of headers: {status_headers}; a 16 KB URL: {line!r}; healthy after: " \
                 f"{healthy(c.n)}"
    return status_headers == 431 and " 414 " in line and healthy(c.n)


def cross_site_and_foreign_host(c):
    origin = f"http://127.0.0.1:{c.n.web}"
    foreign, _, _ = http(c.n, "POST", "/api/v1/jobs/1/retry", headers={
        "Origin": "http://evil.example"})
    no_origin_form, _, _ = http(c.n, "POST", "/api/v1/jobs/1/retry", body=b"a=b", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"})
    host = raw_http(c.n.web, b"GET /api/v1/status HTTP/1.1\r\nHost: rebind.example\r\n\r\n")
    same, _, _ = http(c.n, "POST", "/api/v1/jobs/999/retry", headers={"Origin": origin})
    c.observed = (f"foreign Origin: {foreign}; cross-site form: {no_origin_form}; foreign Host: "
                  f"{host!r}; same origin reaches the handler: {same}")
    return foreign == 403 and no_origin_form == 403 and " 421 " in host and same == 404


def zip_slip_and_symlinks(c):
    sent = c.study("z", 2)
    outside = os.path.join(c.root, "outside")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, path in enumerate(sent.files):
            name = f"../../../../{os.path.relpath(outside, '/')}/evil{i}.dcm" if i == 0 else \
                f"ok/{i}.dcm"
            archive.write(path, name)
        link = zipfile.ZipInfo("link.dcm")
        link.external_attr = (0o120777 << 16)
        archive.writestr(link, "/etc/passwd")
        archive.write(sent.files[0], "/absolute/evil.dcm")
    status, body, _ = http(c.n, "POST", "/api/v1/upload?ae=CHAOS", body=buffer.getvalue(),
                           headers={"Origin": f"http://127.0.0.1:{c.n.web}",
                                    "Content-Type": "application/zip"})
    escaped = os.path.exists(outside) or os.path.exists("/absolute")
    stray = [p for p in (os.path.join(c.n.data, "link.dcm"),) if os.path.lexists(p)]
    c.observed = (f"{status} {body[:400].decode(errors='replace')!r}; anything written outside: "
                  f"{escaped or bool(stray)}")
    link_named = b"link.dcm: not a regular file" in body
    return status == 202 and not escaped and not stray and link_named


def password_guessing(c):
    hashed = subprocess.run([c.binary, "passwd", "--name", "ada", "--role", "admin"],
                            input="right-password\n", capture_output=True, text=True, check=True)
    import json
    user = json.loads(hashed.stdout.strip().splitlines()[-1])
    n = c.node(config={"web": {"users": [user]}})
    wrong = base64.b64encode(b"ada:wrong").decode()
    statuses = [http(n, "GET", "/api/v1/status", headers={"Authorization": "Basic " + wrong})[0]
                for _ in range(8)]
    start = time.time()
    health = healthy(n)
    took = time.time() - start
    right = base64.b64encode(b"ada:right-password").decode()
    time.sleep(0.3)
    later = http(n, "GET", "/api/v1/status", headers={"Authorization": "Basic " + right})[0]
    c.observed = (f"8 wrong passwords: {statuses}; /healthz meanwhile in {took * 1000:.0f} ms; "
                  f"after the back-off, the right password: {later}")
    return statuses[:3] == [401] * 3 and 429 in statuses and health and took < 1 and \
        later in (200, 429)


CASES = [
    ("garbage on the DICOM port", "the connection is dropped (A-ABORT or close)",
     garbage_on_the_dicom_port),
    ("A-ASSOCIATE-RQ claiming 2 GB", "dropped without allocating it", oversize_association_request),
    ("P-DATA-TF claiming 4 GB", "A-ABORT without allocating it", oversize_data_pdu),
    ("40 half-open connections (32 slots)", "no slot taken; each closed at acse_timeout_s",
     half_open_connections),
    ("association request trickled a byte at a time", "dropped at acse_timeout_s",
     trickling_association_request),
    ("association aborted mid-store", "the partial instance is not kept; what was acknowledged "
     "before stays", association_aborted_mid_store),
    ("33 associations (limit 32)", "the 33rd is rejected (A-ASSOCIATE-RJ, transient)",
     associations_beyond_the_limit),
    ("1000 idle HTTP connections", "/healthz still answers at once; descriptors return",
     many_idle_http_connections),
    ("connections beyond the descriptor limit", "no busy loop; both ports serve again once they "
     "close", descriptors_run_out),
    ("HTTP headers trickled", "closed at the read timeout", slow_http_headers),
    ("16 KB of headers, 16 KB URL", "431 and 414", oversize_headers_and_url),
    ("cross-site request, foreign Host (DNS rebinding)", "403 and 421",
     cross_site_and_foreign_host),
    ("ZIP upload with ../, absolute and symlink entries", "nothing written outside the node; "
     "the link named as left out",
     zip_slip_and_symlinks),
    ("password guessing", "401, then 429 with back-off; /healthz unaffected", password_guessing),
]


class context:
    def __init__(self, binary, root, mark):
        self.binary, self.root, self.mark = binary, root, mark
        os.makedirs(root)
        self.nodes = []
        self.observed, self.lost = "", 0
        self.n = None

    def node(self, prefix=(), **options):
        config = {"dicom": {"acse_timeout_s": 3}}
        config.update(options.pop("config", {}))
        config["dicom"] = dict({"acse_timeout_s": 3}, **config.get("dicom", {}))
        config.setdefault("web", {})["read_timeout_s"] = 3
        n = node(self.binary, os.path.join(self.root, f"node{len(self.nodes)}"), config=config,
                 mark=self.mark, **options)
        n.add_stream("keep", {"AETitle": "CHAOS", "command": ["/bin/true"],
                              "quiet_period_s": 600})
        n.start(prefix=prefix)
        self.nodes.append(n)
        return n

    def study(self, name, instances):
        return study(self.binary, os.path.join(self.root, name), instances, series=1)

    def close(self):
        for n in self.nodes:
            n.stop()


def case_context(binary, work, number):
    """A context with its node started; a case passes only if the node still runs."""
    c = context(binary, os.path.join(work, f"hostile-{number}"), f"hostile-{number}-{os.getpid()}")
    c.n = c.node()
    return c


def run(binary, work, only, log=print):
    return run_cases("hostile", [(name, must, still_running(case)) for name, must, case in CASES],
                     lambda number: case_context(binary, work, number), only, log)


def still_running(case):
    def checked(c):
        ok = case(c)
        if ok and not c.n.running():
            c.observed += "; the node exited"
            return False
        return ok
    return checked
