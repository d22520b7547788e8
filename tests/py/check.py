#!/usr/bin/env python3
"""Conformance check of parcel-hub against python-socketio's asyncio client.

Usage: python3 tests/py/check.py /path/to/parcel-hub-binary

It starts the real binary on 127.0.0.1:0 with a fresh SQLite file in a temp
dir, runs every check once over WebSocket and once over HTTP long-polling
(no upgrade), prints one PASS/FAIL line per check and, last, a line
`N passed, M failed`. Exit code 0 only when everything passed. The hub's own
lines are printed only when a check failed.

The cases follow the repository's PROTOCOL.md, as python-socketio speaks
it: its `call()` for acks (an event with no argument when `data` is None),
its catch-all handlers, its `connect_error` data, and one Engine.IO
connection carrying two namespaces.
"""

import asyncio
import collections
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata

import socketio

STARTUP_TIMEOUT = 20.0  # the hub must print its address within this
STEP_TIMEOUT = 5.0  # every single wait (ack, event, connect)
CHECK_TIMEOUT = 30.0  # one whole check
QUIET_WINDOW = 0.3  # "receives nothing" windows

VENDOR = {"vendorId": "acme-widgets", "token": "demo-acme"}
NORTH = {"distributorId": "north-hub", "token": "demo-north"}
SOUTH = {"distributorId": "south-hub", "token": "demo-south"}
TRANSPORTS = ["websocket", "polling"]
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]00:00)$")


class CheckError(Exception):
    """A check's expectation that did not hold."""


def expect(cond, message, actual=None):
    if not cond:
        raise CheckError(message if actual is None else f"{message}; got {actual!r}"[:1500])


def expect_ok(ack, what):
    expect(isinstance(ack, dict) and ack.get("ok") is True, f"{what}: expected an ack with ok: true", ack)


def expect_time(value, what):
    expect(isinstance(value, str) and RFC3339_UTC.match(value), f"{what} must be an RFC 3339 UTC time", value)


def stamp(label):
    return f"{label}-{int(time.time() * 1000):x}-{secrets.token_hex(3)}"


class Peer:
    """One python-socketio client and everything it has received, per
    namespace, so that waits never race with the events they wait for."""

    def __init__(self, url, transport, label):
        self.url = url
        self.transport = transport
        self.label = label
        self.sio = socketio.AsyncClient(reconnection=False)
        self.inbox = collections.defaultdict(list)  # namespace -> [(event, data)]
        self.arrived = asyncio.Event()
        self.refusals = {}  # namespace -> connect_error data

    def _listen(self, namespace):
        async def catch_all(event, *args):
            self.inbox[namespace].append((event, args[0] if args else None))
            self.arrived.set()

        async def refused(data=None):
            self.refusals[namespace] = data

        self.sio.on("*", catch_all, namespace=namespace)
        self.sio.on("connect_error", refused, namespace=namespace)

    async def connect(self, auths):
        """Connects to every namespace of `auths` ({namespace: auth}) over
        one Engine.IO connection; auth is one dict for all of them."""
        merged = {}
        for namespace, auth in auths.items():
            self._listen(namespace)
            merged.update(auth or {})
        await self.sio.connect(
            self.url,
            auth=merged or None,
            transports=[self.transport],
            namespaces=list(auths),
            wait_timeout=STEP_TIMEOUT,
        )
        return self

    async def refused(self, namespace, auth):
        """The `connect_error` message a connection to `namespace` gets.

        It waits for the refusal itself rather than letting `connect()`
        close the connection: the hub (engineioxide) pings as soon as a
        session opens, and python-engineio's polling writer drops a CLOSE
        queued while it posts the PONG, so that `disconnect()` would wait
        for the next ping (25 s)."""
        refused = asyncio.Event()

        async def on_refusal(data=None):
            self.refusals[namespace] = data
            refused.set()

        self.sio.on("connect_error", on_refusal, namespace=namespace)
        await self.sio.connect(self.url, auth=auth, transports=[self.transport], namespaces=[namespace], wait=False)
        try:
            await asyncio.wait_for(refused.wait(), STEP_TIMEOUT)
        except asyncio.TimeoutError as e:
            raise CheckError(f"{self.label}: connecting to {namespace} should have been refused") from e
        finally:
            await self.sio.eio.disconnect(abort=True)
        expect(namespace not in self.sio.namespaces, f"{self.label}: refused, yet connected", self.sio.namespaces)
        data = self.refusals[namespace]
        return data.get("message") if isinstance(data, dict) else data

    async def call(self, event, data=None, namespace="/vendor"):
        try:
            return await self.sio.call(event, data, namespace=namespace, timeout=STEP_TIMEOUT)
        except socketio.exceptions.TimeoutError as e:
            raise CheckError(f"{self.label}: no ack to {event!r} within {STEP_TIMEOUT} s") from e

    async def next(self, event, namespace, within=STEP_TIMEOUT, match=lambda data: True):
        """The first unread `event` in `namespace` (that `match`es), read."""
        deadline = time.monotonic() + within
        while True:
            items = self.inbox[namespace]
            for i, (name, data) in enumerate(items):
                if name == event and match(data):
                    del items[i]
                    return data
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def expect(self, event, namespace, match=lambda data: True):
        data = await self.next(event, namespace, match=match)
        if data is None:
            raise CheckError(f"{self.label}: no {event!r} on {namespace} within {STEP_TIMEOUT} s")
        return data

    async def expect_none(self, event, namespace, match=lambda data: True):
        data = await self.next(event, namespace, within=QUIET_WINDOW, match=match)
        expect(data is None, f"{self.label}: unexpected {event!r} on {namespace}", data)

    async def close(self):
        if self.sio.connected or self.sio.eio.state != "disconnected":
            await self.sio.disconnect()


class Clients:
    """The peers of one check, all closed when it ends."""

    def __init__(self, url, transport):
        self.url, self.transport, self.peers = url, transport, []

    def peer(self, label):
        p = Peer(self.url, self.transport, label)
        self.peers.append(p)
        return p

    async def connect(self, namespace, auth, label):
        return await self.peer(label).connect({namespace: auth})

    async def refused(self, namespace, auth, label):
        return await self.peer(label).refused(namespace, auth)

    async def close(self):
        for p in self.peers:
            await p.close()


async def confirm_all(peer, namespace, what):
    """Reads the whole queue (`getAll` with nothing, which means `{}`) and
    confirms every message in it."""
    while True:
        queued = await peer.call("getAll", None, namespace)
        expect_ok(queued, f"{what} getAll")
        for m in queued["messages"]:
            expect_ok(await peer.call("received", {"messageId": m["messageId"]}, namespace), f"{what} received")
        if not queued.get("more"):
            return


# ---------------------------------------------------------------- checks


async def round_trip(c, t):
    vendor, north, south = await asyncio.gather(
        c.connect("/vendor", VENDOR, "vendor acme-widgets"),
        c.connect("/distributor", NORTH, "distributor north-hub"),
        c.connect("/distributor", SOUTH, "distributor south-hub"),
    )
    order_id = f"o-{stamp(t)}"
    pickup = {"orderId": order_id, "distributorId": "north-hub", "customer": "Jamie Doe", "address": "Seattle, WA"}
    ack = await vendor.call("pickup", pickup)
    expect_ok(ack, "pickup ack")
    expect(ack["duplicate"] is False, "pickup ack: duplicate should be false", ack)
    expect(ack["order"]["status"] == "pending" and ack["order"]["orderId"] == order_id, "pickup ack: the order, pending", ack)
    envelope = await north.expect("pickup", "/distributor", lambda m: m["order"]["orderId"] == order_id)
    expect(envelope["messageId"] == ack["messageId"] and envelope["event"] == "pickup", "north-hub: the queued message of the ack", envelope)
    expect_time(envelope["at"], "envelope.at")
    await south.expect_none("pickup", "/distributor")
    for step in ["in-transit", "delivered"]:
        moved = await north.call(step, {"vendorId": "acme-widgets", "orderId": order_id}, "/distributor")
        expect_ok(moved, f"{step} ack")
        news = await vendor.expect(step, "/vendor", lambda m: m["order"]["orderId"] == order_id)
        expect(news["messageId"] == moved["messageId"] and news["order"]["status"] == step, f"vendor hears {step}", news)
    again = await vendor.call("pickup", pickup)
    expect_ok(again, "the same pickup again")
    expect(again["duplicate"] is True and again["order"]["status"] == "delivered", "a repeated pickup is a duplicate", again)
    await confirm_all(north, "/distributor", "north-hub")
    await confirm_all(vendor, "/vendor", "vendor")


async def offline_catch_up(c, t):
    vendor = await c.connect("/vendor", VENDOR, "vendor acme-widgets")
    order_id = f"off-{stamp(t)}"
    ack = await vendor.call("pickup", {"orderId": order_id, "distributorId": "south-hub", "customer": "Sam", "address": "Tacoma, WA"})
    expect_ok(ack, "pickup ack while south-hub is offline")
    south = await c.connect("/distributor", SOUTH, "distributor south-hub, later")
    queued = await south.call("getAll", None, "/distributor")
    expect_ok(queued, "getAll with no argument")
    ids = [m["messageId"] for m in queued["messages"]]
    expect(ack["messageId"] in ids, "getAll lists the pickup sent while offline", queued)
    expect_ok(await south.call("received", {"messageId": ack["messageId"]}, "/distributor"), "received")
    after = await south.call("getAll", {}, "/distributor")
    expect(ack["messageId"] not in [m["messageId"] for m in after["messages"]], "a confirmed message is gone", after)
    await south.call("getAll", None, "/distributor")  # a second read repeats nothing
    await confirm_all(south, "/distributor", "south-hub")
    await confirm_all(vendor, "/vendor", "vendor")


async def refusal_wrong_token(c, t):
    secret = f"wrong-token-{secrets.token_hex(4)}"
    message = await c.refused("/vendor", {"vendorId": "acme-widgets", "token": secret}, "vendor, wrong token")
    expect(isinstance(message, str) and message.startswith("unauthorized: "), "wrong token: unauthorized", message)
    expect(secret not in message, "the token is never echoed back", message)


async def refusal_no_auth(c, t):
    message = await c.refused("/distributor", None, "distributor without auth")
    expect(isinstance(message, str) and message.startswith("bad_auth: "), "no auth: bad_auth", message)


async def refusal_unknown_namespace(c, t):
    message = await c.refused("/nope", {"token": "demo-admin"}, "client of /nope")
    expect(message == "Invalid namespace", "an unknown namespace: Invalid namespace", message)


async def error_envelope(c, t):
    vendor = await c.connect("/vendor", VENDOR, "vendor acme-widgets")
    for payload in [{}, None, "a string", [1, 2]]:
        ack = await vendor.call("pickup", payload)
        expect(isinstance(ack, dict) and ack.get("ok") is False, f"pickup {payload!r}: ok false", ack)
        expect(ack["error"]["code"] == "invalid_payload" and ack["error"]["message"], f"pickup {payload!r}: invalid_payload with a message", ack)
    unknown = await vendor.call("launch-rocket", {"now": True})
    expect(isinstance(unknown, dict) and unknown.get("ok") is False and unknown["error"]["code"] == "unknown_event", "an unknown event: unknown_event", unknown)
    wrong_side = await vendor.call("in-transit", {"vendorId": "acme-widgets", "orderId": "x"})
    expect(wrong_side.get("ok") is False, "a vendor cannot move an order", wrong_side)


async def chat(c, t):
    ana_name, ben_name = f"Ana {t}", f"Ben {t}"
    ana = await c.connect("/chat", {"name": ana_name}, "chat Ana")
    users = await ana.expect("users", "/chat")
    expect(ana_name in users["users"] and users["online"] == len(users["users"]), "users names the newcomer and counts", users)
    ben = await c.connect("/chat", {"name": ben_name}, "chat Ben")
    hello = await ana.expect("user connected", "/chat")
    expect(hello == {"name": ben_name, "online": hello["online"]} and hello["online"] >= 2, "user connected: { name, online }", hello)
    said = await ana.call("chat message", {"text": f"hello from {t}"}, "/chat")
    expect_ok(said, "chat message ack")
    expect(isinstance(said["offset"], int) and said["offset"] > 0, "the ack carries the offset", said)
    heard = await ben.expect("chat message", "/chat")
    expect(heard["from"] == ana_name and heard["text"] == f"hello from {t}" and heard["offset"] == said["offset"], "Ben hears Ana", heard)
    await ana.expect_none("chat message", "/chat")
    bare = await ben.call("chat message", "a bare string", "/chat")
    expect_ok(bare, "a bare string is a message")
    taken = await c.refused("/chat", {"name": ana_name.upper()}, "a second Ana")
    expect(taken == f"name_taken: someone called {ana_name.upper()} is already here", "a second Ana: name_taken", taken)
    # "Jose" + U+0301 is "José" once normalised (NFC); it reconnects with
    # the offset before Ana's message and gets it first.
    jose_name = unicodedata.normalize("NFD", f"José {t}")
    jose = await c.connect("/chat", {"name": jose_name, "offset": said["offset"] - 1}, "chat José")
    replayed = await jose.expect("chat message", "/chat")
    expect(replayed["offset"] == said["offset"] and replayed["from"] == ana_name, "the missed message first", replayed)
    seen = await jose.expect("users", "/chat")
    expect(unicodedata.normalize("NFC", jose_name) in seen["users"], "names in NFC", seen)
    room = f"r-{t}"
    expect_ok(await ana.call("join", {"room": room}, "/chat"), "join")
    in_room = await ana.call("chat message", {"text": "in the room", "room": room}, "/chat")
    joined = await jose.call("join", {"room": room, "offset": 0}, "/chat")
    expect(len(joined["history"]) == 1 and joined["history"][0]["offset"] == in_room["offset"], "join answers the room's history", joined)
    expect(sorted(joined["members"]) == sorted([ana_name, unicodedata.normalize("NFC", jose_name)]), "members", joined)
    typing = await ben.call("typing", None, "/chat")
    expect_ok(typing, "typing with nothing")
    expect((await ana.expect("typing", "/chat"))["name"] == ben_name, "Ana sees Ben typing")
    left = await c.refused("/chat", {"name": "\u202eevil"}, "a name with a formatting character")
    expect(isinstance(left, str) and left.startswith("bad_auth: "), "control or formatting characters: bad_auth", left)


async def current_state(c, t):
    tab_a, tab_b, north = await asyncio.gather(
        c.connect("/vendor", VENDOR, "vendor tab A"),
        c.connect("/vendor", VENDOR, "vendor tab B"),
        c.connect("/distributor", NORTH, "north-hub"),
    )
    ids = [f"s1-{stamp(t)}", f"s2-{stamp(t)}"]
    for order_id in ids:
        expect_ok(await tab_a.call("pickup", {"orderId": order_id, "distributorId": "north-hub", "customer": "Jamie", "address": "Seattle"}), "pickup")
        notice = await tab_b.expect("order", "/vendor", lambda n: n["order"]["orderId"] == order_id)
        expect(notice["order"]["status"] == "pending", "tab B hears of the new order", notice)
    await tab_a.expect_none("order", "/vendor")
    expect_ok(await north.call("in-transit", {"vendorId": "acme-widgets", "orderId": ids[0]}, "/distributor"), "in-transit")
    first = await tab_b.call("orders", {"status": "open", "limit": 1})
    expect_ok(first, "orders")
    expect(len(first["orders"]) == 1 and first["orders"][0]["orderId"] == ids[0], "the most recently updated first", first)
    second = await tab_b.call("orders", {"status": "open", "limit": 1, "before": first["next"]})
    expect(second["orders"][0]["orderId"] == ids[1], "the next page", second)
    plain = await tab_a.call("orders", None)
    expect_ok(plain, "orders with no argument")
    bad = await tab_a.call("orders", {"limit": 0})
    expect(bad.get("ok") is False and bad["error"]["code"] == "invalid_payload", "orders { limit: 0 }", bad)
    await confirm_all(north, "/distributor", "north-hub")
    await confirm_all(tab_a, "/vendor", "vendor")


async def two_namespaces_one_connection(c, t):
    """python-socketio multiplexes namespaces over one Engine.IO
    connection, with one auth for all: each namespace reads its own fields."""
    name = f"Vee {t}"
    both = await c.peer("vendor and chat on one connection").connect({"/vendor": VENDOR, "/chat": {"name": name}})
    expect(set(both.sio.namespaces) == {"/vendor", "/chat"}, "both namespaces connected", both.sio.namespaces)
    users = await both.expect("users", "/chat")
    expect(name in users["users"], "the chat knows its name", users)
    order_id = f"mx-{stamp(t)}"
    expect_ok(await both.call("pickup", {"orderId": order_id, "distributorId": "north-hub", "customer": "Kim", "address": "Olympia"}), "pickup on /vendor")
    said = await both.call("chat message", {"text": "from the same connection"}, "/chat")
    expect_ok(said, "chat message on /chat")
    wrong = await both.call("pickup", {"orderId": "x"}, "/chat")
    expect(wrong.get("ok") is False and wrong["error"]["code"] == "unknown_event", "/chat does not take pickups", wrong)
    north = await c.connect("/distributor", NORTH, "north-hub")
    await confirm_all(north, "/distributor", "north-hub")
    await confirm_all(both, "/vendor", "vendor")


CHECKS = [
    ("round trip pickup -> in-transit -> delivered", round_trip),
    ("offline catch-up: getAll and received", offline_catch_up),
    ("refusal: wrong token", refusal_wrong_token),
    ("refusal: no auth", refusal_no_auth),
    ("refusal: unknown namespace", refusal_unknown_namespace),
    ("error envelopes", error_envelope),
    ("chat v2: users, names, history, rooms", chat),
    ("current state: orders pages and order notices", current_state),
    ("two namespaces on one connection", two_namespaces_one_connection),
]


# ---------------------------------------------------------------- the hub


class Hub:
    """The real binary on a free loopback port with a fresh database."""

    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="parcel-hub-py-")
        args = [binary, "--listen", "127.0.0.1:0", "--db", os.path.join(self.dir, "hub.db")]
        print(f"[check] starting {' '.join(args)}", flush=True)
        self.lines = collections.deque(maxlen=300)
        self.child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = None
        found = threading.Event()

        def read(stream, tag):
            for line in stream:
                line = re.sub(r"\x1b\[[0-9;]*m", "", line.rstrip("\n"))
                self.lines.append(f"[hub {tag}] {line}")
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m and tag == "stdout":
                    self.port = int(m.group(1))
                    found.set()

        for stream, tag in [(self.child.stdout, "stdout"), (self.child.stderr, "stderr")]:
            threading.Thread(target=read, args=(stream, tag), daemon=True).start()
        if not found.wait(STARTUP_TIMEOUT):
            self.stop()
            raise RuntimeError("the hub did not print 'listening on http://127.0.0.1:PORT' on stdout")

    def stop(self):
        if self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(10)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


async def run(hub):
    passed = failed = 0
    url = f"http://127.0.0.1:{hub.port}"
    for transport in TRANSPORTS:
        for name, check in CHECKS:
            clients = Clients(url, transport)
            started = time.monotonic()
            try:
                await asyncio.wait_for(check(clients, transport), CHECK_TIMEOUT)
                passed += 1
                print(f"PASS [{transport}] {name} ({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)
            except Exception as e:  # every failure is reported, then the next check runs
                failed += 1
                why = str(e) if isinstance(e, CheckError) else f"{type(e).__name__}: {e}"
                print(f"FAIL [{transport}] {name}: {why}", flush=True)
                if hub.child.poll() is not None:
                    print(f"[check] the hub has exited ({hub.child.returncode})", flush=True)
            finally:
                await clients.close()
    return passed, failed


def main():
    if len(sys.argv) != 2:
        print("usage: python3 tests/py/check.py /path/to/parcel-hub-binary", file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    if not os.path.exists(binary):
        print(f"FAIL [startup] no such file: {binary}")
        return 1
    try:
        hub = Hub(binary)
    except RuntimeError as e:
        print(f"FAIL [startup] {e}")
        return 1
    try:
        passed, failed = asyncio.run(run(hub))
    finally:
        hub.stop()
    if failed:
        print("\n".join(hub.lines))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
