#!/usr/bin/env python3
"""Bounded fault and load scripts against a real parcel-hub binary.

Each check starts its own hub (a fresh database in a temporary folder),
attacks it with raw HTTP / Engine.IO long-polling (Python's standard
library only), prints what it measured, and exits non-zero when the hub
shows the defect it looks for. `--quick` runs smaller numbers (CI);
without it the numbers of the README "Failure modes" table.

    tests/faults/faults.py BINARY CHECK [--quick]

Checks: attachments, half-open, sigterm, log-flood, get-all, join-storm,
learn-leak. `tests/faults/run.sh BINARY [--quick]` runs them all.
"""

import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

RUN = f"{os.getpid()}-{int(time.time())}"
PAGE = 4096


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


class Hub:
    """A parcel-hub process on a free loopback port, its log in a file."""

    def __init__(self, binary, *args, db=None):
        self.dir = tempfile.TemporaryDirectory(prefix="ph-fault-")
        self.db = db or os.path.join(self.dir.name, "hub.db")
        self.log_path = os.path.join(self.dir.name, "hub.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--db", self.db, *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        deadline = time.time() + 30
        self.url = None
        while time.time() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            m = re.match(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            fail("the hub did not start")
        # Keep draining stdout so the hub never blocks on it.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.host, self.port = self.url[len("http://"):].split(":")
        self.port = int(self.port)

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def written(self):
        with open(f"/proc/{self.proc.pid}/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
        return 0

    def threads(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def deleted_files(self):
        out = []
        for fd in os.listdir(f"/proc/{self.proc.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{self.proc.pid}/fd/{fd}")
            except OSError:
                continue
            if target.endswith("(deleted)"):
                out.append(target)
        return out

    def log_bytes(self):
        self.log.flush()
        return os.path.getsize(self.log_path)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def http_request(hub, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection(hub.host, hub.port, timeout=timeout)
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"content-type": "application/json"} if data else {}
    hdrs.update(headers or {})
    conn.request(method, path, body=data, headers=hdrs)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, payload


def basic(user, token):
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


ACME = basic("acme-widgets", "demo-acme")
FLOWERS = basic("1-800-flowers", "demo-flowers")


def pickup(order, distributor="north-hub"):
    return {
        "orderId": order,
        "distributorId": distributor,
        "customer": "Jamie Doe",
        "address": "Seattle, WA",
    }


def _measure_acks(host, port, tag, stop, out):
    """In a process of its own (no shared interpreter lock with the load):
    another vendor's pickups over HTTP, one at a time, until `stop`."""
    latencies = []
    i = 0
    while not stop.is_set():
        conn = http.client.HTTPConnection(host, port, timeout=30)
        body = json.dumps(pickup(f"o-other-{tag}-{i}", "south-hub")).encode()
        started = time.time()
        conn.request(
            "POST",
            "/api/pickups",
            body=body,
            headers={"content-type": "application/json", "authorization": FLOWERS},
        )
        r = conn.getresponse()
        r.read()
        conn.close()
        if r.status == 201:
            latencies.append((time.time() - started) * 1000)
        i += 1
        time.sleep(0.02)
    out.put(latencies)


class PeakRss:
    """Samples the hub's RSS every 50 ms from now until `finish`, which
    answers how far the peak rose above the RSS at the start, in MB."""

    def __init__(self, hub):
        self.hub = hub
        self.start = hub.rss_kb()
        self.peak = self.start
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample)
        self.thread.start()

    def _sample(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.hub.rss_kb())
            time.sleep(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return (self.peak - self.start) / 1024


def p99_and_max(latencies):
    """The p99 and the largest of sorted `latencies` (0 when there are none)."""
    if not latencies:
        return 0, 0
    return latencies[int(len(latencies) * 0.99) - 1], latencies[-1]


class AckProbe:
    """Measures another client's acks from a separate process."""

    def __init__(self, hub, tag):
        import multiprocessing

        self.stop = multiprocessing.Event()
        self.out = multiprocessing.Queue()
        self.proc = multiprocessing.Process(
            target=_measure_acks, args=(hub.host, hub.port, tag, self.stop, self.out)
        )
        self.proc.start()

    def finish(self):
        self.stop.set()
        latencies = sorted(self.out.get(timeout=60))
        self.proc.join()
        return latencies


def timed_pickup(hub, order, auth=FLOWERS, distributor="south-hub"):
    started = time.time()
    status, _ = http_request(
        hub, "POST", "/api/pickups", pickup(order, distributor), {"authorization": auth}
    )
    return status, (time.time() - started) * 1000


class Polling:
    """One Engine.IO long-polling session, by hand."""

    def __init__(self, hub, timeout=30):
        self.hub = hub
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(hub.host, hub.port, timeout=timeout)
        body = self._get("/socket.io/?EIO=4&transport=polling")
        if not body.startswith("0"):
            raise RuntimeError(f"no open packet: {body[:80]}")
        self.sid = json.loads(body[1:])["sid"]
        self.inbox = []
        self.closed = False

    def _get(self, path):
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        body = r.read().decode(errors="replace")
        if r.status != 200:
            self.closed = True
        return body

    def send(self, *packets):
        self.conn.request(
            "POST",
            f"/socket.io/?EIO=4&transport=polling&sid={self.sid}",
            body="\x1e".join(packets).encode(),
            headers={"content-type": "text/plain;charset=UTF-8"},
        )
        r = self.conn.getresponse()
        r.read()
        if r.status != 200:
            self.closed = True
        return r.status

    def poll(self):
        body = self._get(f"/socket.io/?EIO=4&transport=polling&sid={self.sid}")
        packets = body.split("\x1e") if body else []
        for p in packets:
            if p == "2":
                self.send("3")
            elif p.startswith("1"):
                self.closed = True
        self.inbox.extend(packets)
        return packets

    def join(self, namespace, auth):
        self.send(f"40{namespace},{json.dumps(auth)}")
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            for p in self.poll():
                if p.startswith(f"40{namespace},"):
                    return True
                if p.startswith(f"44{namespace},"):
                    return False
            if self.closed:
                return False
        return False

    def ack(self, namespace, ack_id, event, *args):
        self.send(f"42{namespace},{ack_id}{json.dumps([event, *args])}")
        prefix = f"43{namespace},{ack_id}["
        deadline = time.time() + self.timeout
        while time.time() < deadline and not self.closed:
            for p in self.poll():
                if p.startswith(prefix):
                    return json.loads(p[len(prefix) - 1:])[0]
        return None

    def close(self):
        try:
            self.conn.close()
        except OSError:
            pass


def join_chat(hub, name):
    s = Polling(hub)
    if not s.join("/chat", {"name": name}):
        fail(f"{name} could not join /chat")
    return s


# --- checks -----------------------------------------------------------------


def attachments(binary, quick):
    """Sessions announce binary attachments and send as much as the hub takes."""
    n = 30 if quick else 200
    hub = Hub(binary)
    try:
        time.sleep(0.5)
        before = hub.rss_kb()
        held = []
        for i in range(n):
            s = join_chat(hub, f"att-{RUN}-{i}")
            # 4 attachments announced (the limit), 3 sent, 15 KB in all
            # (under 16 KB): the most one packet may hold while incomplete.
            chunk = base64.b64encode(b"\0" * 5000).decode()
            s.send(
                '454-/chat,["chat message",{"_placeholder":true,"num":0}]',
                "b" + chunk,
                "b" + chunk,
                "b" + chunk,
            )
            held.append(s)
        peak = hub.rss_kb()
        # Over the limit: one 48 KB attachment; the hub must close the session.
        over = join_chat(hub, f"att-over-{RUN}")
        big = base64.b64encode(b"\0" * 48_000).decode()
        over.send('451-/chat,["chat message",{"_placeholder":true,"num":0}]', "b" + big)
        deadline = time.time() + 10
        while not over.closed and time.time() < deadline:
            over.poll()
        per_session = (peak - before) / n
        time.sleep(0.5)
        log = hub.log_text()
        print(
            f"attachments: {n} /chat sessions each holding a partial binary packet at the limits "
            f"(4 announced, 15 KB sent): RSS {before} KB -> {peak} KB, {per_session:.1f} KB per session "
            f"(session included); a 48 KB attachment closed its session: {over.closed}"
        )
        if not over.closed:
            fail("a packet over --max-attachment-bytes did not close its session")
        if "packet refused" not in log:
            fail("the refused packet was not logged")
        # A debug build (CI's quick run) costs more per session than release.
        limit = 200 if quick else 100
        if per_session > limit:
            fail(f"{per_session:.1f} KB per session (limit about {limit} KB)")
    finally:
        hub.stop()


def half_open(binary, quick):
    """Idle and half-sent HTTP connections are closed by the header timeout."""
    n = 200 if quick else 1_100
    timeout = 2 if quick else 20
    hub = Hub(binary, "--header-timeout", str(timeout))
    try:
        conns = []
        for i in range(n):
            c = socket.create_connection((hub.host, hub.port))
            if i % 2:
                c.sendall(b"POST /api/pickups HTTP/1.1\r\nHost: x\r\n")
            conns.append(c)
        started = time.time()
        status, _ = http_request(hub, "GET", "/api/health")
        health_ms = (time.time() - started) * 1000
        if status != 200:
            fail(f"health answered {status} with {n} connections held")
        closed = 0
        for c in conns:
            c.settimeout(max(0.1, timeout + 10 - (time.time() - started)))
            try:
                if c.recv(1) == b"":
                    closed += 1
                else:
                    closed += 1
            except (socket.timeout, OSError):
                pass
            c.close()
        took = time.time() - started
        print(
            f"half-open: {n} idle/half-sent connections; health answered in {health_ms:.0f} ms; "
            f"{closed} closed by the hub within {took:.1f} s (--header-timeout {timeout})"
        )
        if closed < n:
            fail(f"{n - closed} connections still open after {timeout + 10} s")
    finally:
        hub.stop()


def sigterm(binary, quick):
    """SIGTERM with connections of every kind open and writes in flight."""
    hub = Hub(binary)
    try:
        half = []
        for _ in range(50):
            c = socket.create_connection((hub.host, hub.port))
            c.sendall(b"POST /api/pickups HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{")
            half.append(c)
        sessions = [join_chat(hub, f"term-{RUN}-{i}") for i in range(20)]
        acked = []
        stop = threading.Event()

        def writer(k):
            i = 0
            while not stop.is_set():
                order = f"o-term-{k}-{i}"
                try:
                    status, _ = http_request(
                        hub, "POST", "/api/pickups", pickup(order), {"authorization": ACME}, timeout=10
                    )
                except OSError:
                    return
                if status in (200, 201):
                    acked.append(order)
                i += 1

        writers = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for w in writers:
            w.start()
        time.sleep(1.0)
        sent = time.time()
        hub.proc.send_signal(signal.SIGTERM)
        try:
            code = hub.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            code = None
        took = time.time() - sent
        stop.set()
        for w in writers:
            w.join()
        for c in half:
            c.close()
        for s in sessions:
            s.close()
        log = hub.log_text()
        storm = log.count("namespace is not registered")
        db = hub.db
        hub.log.close()
        # A new hub on the same file has every acknowledged pickup.
        again = Hub(binary, db=db)
        try:
            missing = 0
            for order in acked:
                status, _ = http_request(
                    again, "GET", f"/api/orders/acme-widgets/{order}", headers={"authorization": ACME}
                )
                if status != 200:
                    missing += 1
        finally:
            again.stop()
        print(
            f"sigterm: exit {code} after {took:.2f} s with 50 half-sent requests, 20 sockets and 4 writers; "
            f"{len(acked)} pickups acknowledged, {missing} missing after restart; "
            f"'namespace is not registered' lines: {storm}"
        )
        if code is None or took > 5:
            fail(f"the hub took {took:.1f} s to exit (limit 5 s)")
        if code != 0:
            fail(f"exit status {code}")
        if missing:
            fail(f"{missing} acknowledged pickups lost")
        if storm:
            fail(f"{storm} 'namespace is not registered' lines while shutting down")
    finally:
        hub.stop()


def log_flood(binary, quick):
    """One client sends refused events with 60 KB names as fast as it can."""
    seconds = 3 if quick else 10
    hub = Hub(binary)
    try:
        s = join_chat(hub, f"flood-{RUN}")
        name = "x" * 60_000
        before = hub.log_bytes()
        started = time.time()
        sent = 0
        while time.time() - started < seconds:
            # 1 event per POST: --max-payload is 64 KB.
            if s.send(f'42/chat,{json.dumps([name, {}])}') != 200:
                s = join_chat(hub, f"flood-{RUN}-{sent}")
            sent += 1
        took = time.time() - started
        time.sleep(0.5)
        rate = (hub.log_bytes() - before) / took
        print(
            f"log-flood: {sent} refused events with 60 KB names in {took:.1f} s "
            f"({sent * 60 / 1024 / took:.1f} MB/s sent): {rate / 1024:.1f} KB/s of log"
        )
        if rate > 1024 * 1024:
            fail(f"{rate / 1024 / 1024:.2f} MB/s of log from one client (limit 1 MB/s)")
    finally:
        hub.stop()


def get_all(binary, quick):
    """getAll on a long queue: hub memory and other clients' acks."""
    n = 5_000 if quick else 100_000
    hub = Hub(binary, "--rate-limit", "0")
    try:
        queued = [0]

        def fill(k, count):
            conn = http.client.HTTPConnection(hub.host, hub.port, timeout=30)
            for i in range(count):
                body = json.dumps(pickup(f"o-q-{k}-{i}")).encode()
                conn.request(
                    "POST",
                    "/api/pickups",
                    body=body,
                    headers={"content-type": "application/json", "authorization": ACME},
                )
                r = conn.getresponse()
                r.read()
                if r.status == 201:
                    queued[0] += 1
            conn.close()

        workers = [threading.Thread(target=fill, args=(k, n // 8)) for k in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        time.sleep(1)
        rss = PeakRss(hub)
        readers = []
        answered = []

        # Each client asks at least 5 times, and all keep asking for 10 s
        # (3 quick), so the probe's acks are a sample worth a p99.
        asking = 3 if quick else 10
        until = time.time() + asking

        def read_all(k):
            s = Polling(hub)
            if not s.join("/distributor", {"distributorId": "north-hub", "token": "demo-north"}):
                return
            round_ = 0
            while round_ < 5 or time.time() < until:
                ack = s.ack("/distributor", round_, "getAll", {})
                if ack:
                    answered.append((len(ack["messages"]), ack.get("more")))
                round_ += 1
            s.close()

        for k in range(20):
            t = threading.Thread(target=read_all, args=(k,))
            t.start()
            readers.append(t)
        probe = AckProbe(hub, f"ga-{RUN}")
        for t in readers:
            t.join()
        latencies = probe.finish()
        grown = rss.finish()
        p99, worst = p99_and_max(latencies)
        print(
            f"get-all: {queued[0]} queued; 20 clients x getAll {{}} for {asking} s ({len(answered)} answers; "
            f"the first: {answered[0][0] if answered else None} messages, more: {answered[0][1] if answered else None}); hub RSS +{grown:.1f} MB; another vendor's pickup over "
            f"HTTP: {len(latencies)} acks, p99 {p99:.1f} ms, max {worst:.1f} ms"
        )
        if grown > 50:
            fail(f"hub memory grew {grown:.1f} MB (limit 50 MB)")
        if any(count > 500 for count, _ in answered):
            fail("a getAll answered more than its limit")
        # The figure (every ack under 50 ms) is for a release build; CI's
        # quick run uses a debug build on a shared machine and only catches
        # the defect (acks held for seconds behind the one connection).
        if quick and p99 > 2_000:
            fail(f"other clients' acks p99 {p99:.1f} ms (limit 2000 ms)")
        if not quick and worst > 50:
            fail(f"other clients' acks up to {worst:.1f} ms (limit 50 ms)")
    finally:
        hub.stop()


def join_storm(binary, quick):
    """Many unauthenticated /chat joins: bytes sent, CPU, memory, others' acks."""
    n = 300 if quick else 2_000
    hub = Hub(binary)
    try:
        time.sleep(0.5)
        cpu0, out0 = hub.cpu_s(), hub.written()
        rss = PeakRss(hub)
        probe = AckProbe(hub, f"storm-{RUN}")
        sessions = []
        lock = threading.Lock()

        def joiner(k, count):
            for i in range(count):
                s = Polling(hub)
                if s.join("/chat", {"name": f"storm-{RUN}-{k}-{i}"}):
                    with lock:
                        sessions.append(s)

        joiners = [threading.Thread(target=joiner, args=(k, n // 8)) for k in range(8)]
        started = time.time()
        for j in joiners:
            j.start()
        for j in joiners:
            j.join()
        took = time.time() - started
        time.sleep(2)
        latencies = probe.finish()
        grown = rss.finish()
        cpu = hub.cpu_s() - cpu0
        sent_mb = (hub.written() - out0) / 1024 / 1024
        p99, worst = p99_and_max(latencies)
        print(
            f"join-storm: {n // 8 * 8} /chat joins tried, {len(sessions)} admitted, in {took:.1f} s: "
            f"hub wrote {sent_mb:.1f} MB, "
            f"CPU {cpu:.1f} s, RSS +{grown:.1f} MB; another vendor's pickup: {len(latencies)} acks, "
            f"p99 {p99:.1f} ms, max {worst:.1f} ms"
        )
        for s in sessions:
            s.close()
        if sent_mb > 50 * n / 2000:
            fail(f"the hub wrote {sent_mb:.1f} MB for {n} joins")
        if grown > 200:
            fail(f"hub memory grew {grown:.1f} MB")
        if p99 > 250:
            fail(f"other clients' acks p99 {p99:.1f} ms during the storm")
    finally:
        hub.stop()


def learn_leak(binary, quick):
    """Lessons that ran steps leave no thread or deleted file behind."""
    lessons = 4 if quick else 20
    hub = Hub(binary)
    try:
        time.sleep(0.5)
        threads0 = hub.threads()
        for i in range(lessons):
            status, body = http_request(hub, "POST", "/learn/01-chat-proof-of-life/session")
            if status != 201:
                fail(f"start: {status} {body[:200]}")
            session = json.loads(body)["session"]
            for _ in range(2):
                http_request(hub, "POST", f"/learn/session/{session}/step")
            http_request(hub, "DELETE", f"/learn/session/{session}")
        time.sleep(3)
        threads = hub.threads()
        deleted = hub.deleted_files()
        errors = hub.log_text().count("disk I/O error")
        print(
            f"learn-leak: {lessons} lessons with steps, each ended: threads {threads0} -> {threads}, "
            f"open deleted files {len(deleted)}, 'disk I/O error' lines {errors}"
        )
        if deleted:
            fail(f"open files of deleted databases: {deleted[:3]}")
        if errors:
            fail("'disk I/O error' logged")
        # Tokio keeps a few idle blocking threads; sqlite threads per lesson would add 2 each.
        if threads > threads0 + 8:
            fail(f"{threads - threads0} threads more than before")
    finally:
        hub.stop()


CHECKS = {
    "attachments": attachments,
    "half-open": half_open,
    "sigterm": sigterm,
    "log-flood": log_flood,
    "get-all": get_all,
    "join-storm": join_storm,
    "learn-leak": learn_leak,
}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] not in CHECKS:
        print(__doc__)
        sys.exit(2)
    CHECKS[sys.argv[2]](os.path.abspath(sys.argv[1]), "--quick" in sys.argv[3:])
