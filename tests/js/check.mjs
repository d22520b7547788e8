#!/usr/bin/env node
// Conformance check of parcel-hub against the official JavaScript client
// (socket.io-client 4.8.x), following /work/shared/PROTOCOL.md.
//
// Usage: node tests/js/check.mjs /path/to/parcel-hub-binary
//
// It starts the real binary on 127.0.0.1:0 with a fresh SQLite file in a temp
// dir, runs every check once over WebSocket and once over HTTP long-polling
// (no upgrade), prints one PASS/FAIL line per check and, last, a line
// `N passed, M failed`. Exit code 0 only when everything passed.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';

const STARTUP_TIMEOUT_MS = 20_000; // hub must print its port within this
const STEP_TIMEOUT_MS = 5_000; // every single wait (ack, event, connect)
const CHECK_TIMEOUT_MS = 30_000; // hard cap for one whole check
const QUIET_WINDOW_MS = 300; // "receives nothing" windows

const VENDOR = { vendorId: 'acme-widgets', token: 'demo-acme' };
const NORTH = { distributorId: 'north-hub', token: 'demo-north' };
const SOUTH = { distributorId: 'south-hub', token: 'demo-south' };

const TRANSPORTS = [
  { label: 'websocket', opts: { transports: ['websocket'], upgrade: false } },
  { label: 'polling', opts: { transports: ['polling'], upgrade: false } },
];

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const show = (v) => {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 1500 ? `${s.slice(0, 1500)}…` : s;
  } catch {
    return String(v);
  }
};

class CheckError extends Error {}

function expect(cond, message, actual) {
  if (!cond) {
    throw new CheckError(actual === undefined ? message : `${message}; got ${show(actual)}`);
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new CheckError(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const RFC3339_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]00:00)$/;
function expectTime(value, what) {
  expect(
    typeof value === 'string' && RFC3339_UTC.test(value) && !Number.isNaN(Date.parse(value)),
    `${what} must be an RFC 3339 UTC time string`,
    value,
  );
}

function expectOk(ack, what) {
  expect(ack !== null && typeof ack === 'object', `${what}: ack must be an object`, ack);
  expect(ack.ok === true, `${what}: expected ack ok:true`, ack);
}

function expectOrder(order, fields, what) {
  expect(order !== null && typeof order === 'object', `${what}: order must be an object`, order);
  for (const [k, v] of Object.entries(fields)) {
    expect(order[k] === v, `${what}: order.${k} should be ${show(v)} but is ${show(order[k])}`, order);
  }
}

function expectEnvelope(env, { event, messageId, orderId, status }, what) {
  expect(env !== null && typeof env === 'object', `${what}: envelope must be an object`, env);
  expect(
    typeof env.messageId === 'string' && env.messageId.length > 0,
    `${what}: envelope.messageId must be a non-empty string`,
    env,
  );
  if (messageId !== undefined) {
    expect(
      env.messageId === messageId,
      `${what}: envelope.messageId should equal the messageId of the sender's ack (${messageId})`,
      env,
    );
  }
  expect(env.event === event, `${what}: envelope.event should be '${event}'`, env);
  expectOrder(env.order, { orderId, vendorId: VENDOR.vendorId, status }, `${what} envelope`);
  expectTime(env.at, `${what}: envelope.at`);
}

// Records every event a socket receives, so waits never race with emits.
class Inbox {
  constructor(socket, name) {
    this.name = name;
    this.items = [];
    this.waiters = [];
    socket.onAny((event, ...args) => {
      const item = { event, args, consumed: false };
      this.items.push(item);
      const i = this.waiters.findIndex((w) => w.event === event);
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        item.consumed = true;
        w.resolve(args[0]);
      }
    });
  }

  summary() {
    return this.items.length === 0 ? 'nothing' : this.items.map((i) => `'${i.event}'`).join(', ');
  }

  // First argument of the next (not yet consumed) `event`.
  next(event, ms = STEP_TIMEOUT_MS) {
    const found = this.items.find((i) => !i.consumed && i.event === event);
    if (found) {
      found.consumed = true;
      return Promise.resolve(found.args[0]);
    }
    return new Promise((resolve, reject) => {
      const w = {
        event,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(
          new CheckError(
            `${this.name} did not receive '${event}' within ${ms} ms (received so far: ${this.summary()})`,
          ),
        );
      }, ms);
      this.waiters.push(w);
    });
  }

  // Waits `ms`, then fails if any unconsumed event matching `filter` arrived.
  async quiet(windowName, filter, ms = QUIET_WINDOW_MS) {
    await sleep(ms);
    const bad = this.items.filter((i) => !i.consumed && filter(i.event));
    expect(
      bad.length === 0,
      `${this.name} should receive nothing in the ${windowName} (${ms} ms) but received ` +
        bad.map((i) => `'${i.event}' ${show(i.args)}`).join(', '),
    );
  }
}

// ---------------------------------------------------------------- hub process

function startHub(bin) {
  const dir = mkdtempSync(join(tmpdir(), 'parcel-hub-js-'));
  const args = ['--listen', '127.0.0.1:0', '--db', join(dir, 'hub.db')];
  console.log(`[check] starting ${bin} ${args.join(' ')}`);
  // Own process group, so stopping it also stops anything it started.
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const hub = { child, dir, exited: false, exitInfo: null, closed: null };
  hub.closed = new Promise((res) => child.on('close', res));
  child.on('exit', (code, signal) => {
    hub.exited = true;
    hub.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
  });

  hub.port = new Promise((resolvePort, rejectPort) => {
    const timer = setTimeout(
      () => rejectPort(new Error(`hub did not print 'listening on http://127.0.0.1:PORT' on stdout within ${STARTUP_TIMEOUT_MS} ms`)),
      STARTUP_TIMEOUT_MS,
    );
    // eslint-disable-next-line no-control-regex
    const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
    const listen = /listening on http:\/\/127\.0\.0\.1:(\d+)/;
    const pipe = (stream, tag) => {
      createInterface({ input: stream }).on('line', (line) => {
        console.log(`[hub ${tag}] ${line}`);
        const m = listen.exec(strip(line));
        if (m) {
          if (tag !== 'stdout') {
            console.log(`[check] note: the listening line came on ${tag}, the contract says stdout`);
          }
          clearTimeout(timer);
          resolvePort(Number(m[1]));
        }
      });
    };
    pipe(child.stdout, 'stdout');
    pipe(child.stderr, 'stderr');
    child.on('error', (e) => {
      clearTimeout(timer);
      rejectPort(new Error(`could not start hub: ${e.message}`));
    });
    child.on('exit', () => {
      clearTimeout(timer);
      rejectPort(new Error(`hub exited (${hub.exitInfo}) before printing its port`));
    });
  });
  hub.port.catch(() => {}); // handled by the caller
  return hub;
}

function signalHub(hub, sig) {
  try {
    process.kill(-hub.child.pid, sig); // the hub's process group
  } catch {
    try {
      hub.child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

async function stopHub(hub) {
  if (!hub) return;
  const { child } = hub;
  if (child.pid === undefined) {
    // never started (spawn error)
  } else if (!hub.exited && child.exitCode === null && child.signalCode === null) {
    signalHub(hub, 'SIGTERM');
    const done = await Promise.race([hub.closed.then(() => true), sleep(5_000).then(() => false)]);
    if (!done) {
      console.log('[check] hub did not stop within 5 s of SIGTERM; sending SIGKILL');
      signalHub(hub, 'SIGKILL');
      await Promise.race([hub.closed, sleep(2_000)]);
    }
  } else {
    signalHub(hub, 'SIGKILL'); // leftovers of an exited hub's group, if any
    await Promise.race([hub.closed, sleep(2_000)]);
  }
  try {
    rmSync(hub.dir, { recursive: true, force: true });
  } catch (e) {
    console.log(`[check] could not remove ${hub.dir}: ${e.message}`);
  }
}

// ---------------------------------------------------------------- clients

// One check's sockets, all closed when the check ends.
class Clients {
  constructor(port, transport) {
    this.base = `http://127.0.0.1:${port}`;
    this.transport = transport;
    this.sockets = [];
  }

  open(nsp, auth) {
    const opts = {
      ...this.transport.opts,
      forceNew: true, // one Engine.IO connection per client, like separate processes
      reconnection: false,
      timeout: STEP_TIMEOUT_MS,
    };
    if (auth !== undefined) opts.auth = auth;
    const socket = io(this.base + nsp, opts);
    this.sockets.push(socket);
    return socket;
  }

  // Resolves with the connected socket and its inbox; rejects on connect_error.
  connect(nsp, auth, name) {
    const socket = this.open(nsp, auth);
    const inbox = new Inbox(socket, name);
    const p = new Promise((resolve, reject) => {
      socket.once('connect', () => resolve({ socket, inbox }));
      socket.once('connect_error', (err) =>
        reject(new CheckError(`${name} could not connect to ${nsp}: connect_error ${show(err.message)}`)),
      );
    });
    return withTimeout(p, STEP_TIMEOUT_MS, `${name} connecting to ${nsp}`);
  }

  // Resolves with the connect_error; rejects if the connection succeeds.
  refused(nsp, auth, name) {
    const socket = this.open(nsp, auth);
    const p = new Promise((resolve, reject) => {
      socket.once('connect', () =>
        reject(new CheckError(`${name}: connection to ${nsp} was accepted, expected connect_error`)),
      );
      socket.once('connect_error', (err) => resolve(err));
    });
    return withTimeout(p, STEP_TIMEOUT_MS, `${name}: waiting for connect_error on ${nsp}`);
  }

  closeAll() {
    for (const s of this.sockets) {
      try {
        s.close();
      } catch {
        /* already gone */
      }
    }
  }
}

async function ack(socket, who, event, payload) {
  try {
    return await socket.timeout(STEP_TIMEOUT_MS).emitWithAck(event, payload);
  } catch (e) {
    throw new CheckError(`${who}: no ack for '${event}' ${show(payload)} within ${STEP_TIMEOUT_MS} ms (${e.message})`);
  }
}

// ---------------------------------------------------------------- checks

async function roundTrip(c, t) {
  const [vendor, north, south] = await Promise.all([
    c.connect('/vendor', VENDOR, 'vendor acme-widgets'),
    c.connect('/distributor', NORTH, 'distributor north-hub'),
    c.connect('/distributor', SOUTH, 'distributor south-hub'),
  ]);
  const orderId = `o-${t.label}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const pickup = { orderId, distributorId: 'north-hub', customer: 'Jamie Doe', address: 'Seattle, WA' };

  // vendor -> pickup
  const a1 = await ack(vendor.socket, 'vendor', 'pickup', pickup);
  expectOk(a1, 'pickup ack');
  expect(a1.duplicate === false, 'pickup ack: duplicate should be false', a1);
  expect(typeof a1.messageId === 'string' && a1.messageId.length > 0, 'pickup ack: messageId must be a non-empty string', a1);
  expectOrder(
    a1.order,
    { orderId, vendorId: 'acme-widgets', distributorId: 'north-hub', customer: 'Jamie Doe', address: 'Seattle, WA', status: 'pending' },
    'pickup ack',
  );

  // north-hub gets the envelope, south-hub gets nothing
  const e1 = await north.inbox.next('pickup');
  expectEnvelope(e1, { event: 'pickup', messageId: a1.messageId, orderId, status: 'pending' }, 'north-hub pickup');
  expect(e1.order.distributorId === 'north-hub', 'north-hub pickup envelope: order.distributorId', e1);
  await south.inbox.quiet('south-hub quiet window after pickup', () => true);

  // north-hub confirms the pickup message
  const a2 = await ack(north.socket, 'north-hub', 'received', { messageId: e1.messageId });
  expectOk(a2, 'north-hub received ack');
  expect(a2.removed === true, 'north-hub received ack: removed should be true', a2);
  const a2b = await ack(north.socket, 'north-hub', 'received', { messageId: e1.messageId });
  expectOk(a2b, 'north-hub second received ack');
  expect(a2b.removed === false, 'north-hub second received of the same messageId: removed should be false', a2b);

  // north-hub -> in-transit, vendor gets the envelope
  const a3 = await ack(north.socket, 'north-hub', 'in-transit', { vendorId: 'acme-widgets', orderId });
  expectOk(a3, 'in-transit ack');
  expectOrder(a3.order, { orderId, status: 'in-transit' }, 'in-transit ack');
  expect(a3.duplicate === false, 'in-transit ack: duplicate should be false', a3);
  const e3 = await vendor.inbox.next('in-transit');
  expectEnvelope(e3, { event: 'in-transit', messageId: a3.messageId, orderId, status: 'in-transit' }, 'vendor in-transit');
  const a4 = await ack(vendor.socket, 'vendor', 'received', { messageId: e3.messageId });
  expectOk(a4, 'vendor received(in-transit) ack');
  expect(a4.removed === true, 'vendor received(in-transit) ack: removed should be true', a4);

  // north-hub -> delivered, vendor gets the envelope
  const a5 = await ack(north.socket, 'north-hub', 'delivered', { vendorId: 'acme-widgets', orderId });
  expectOk(a5, 'delivered ack');
  expectOrder(a5.order, { orderId, status: 'delivered' }, 'delivered ack');
  expect(a5.duplicate === false, 'delivered ack: duplicate should be false', a5);
  const e5 = await vendor.inbox.next('delivered');
  expectEnvelope(e5, { event: 'delivered', messageId: a5.messageId, orderId, status: 'delivered' }, 'vendor delivered');
  const a6 = await ack(vendor.socket, 'vendor', 'received', { messageId: e5.messageId });
  expectOk(a6, 'vendor received(delivered) ack');
  expect(a6.removed === true, 'vendor received(delivered) ack: removed should be true', a6);

  // the same pickup again: duplicate, nothing new queued
  const a7 = await ack(vendor.socket, 'vendor', 'pickup', pickup);
  expectOk(a7, 'repeated pickup ack');
  expect(a7.duplicate === true, 'repeated pickup ack: duplicate should be true', a7);
  expectOrder(a7.order, { orderId, vendorId: 'acme-widgets' }, 'repeated pickup ack');
  await north.inbox.quiet('north-hub quiet window after the repeated pickup', (ev) => ev === 'pickup');

  // all confirmed: both queues are empty
  const a8 = await ack(north.socket, 'north-hub', 'getAll', {});
  expectOk(a8, 'north-hub getAll ack');
  expect(Array.isArray(a8.messages) && a8.messages.length === 0, 'north-hub getAll: messages should be []', a8);
  const a9 = await ack(vendor.socket, 'vendor', 'getAll', {});
  expectOk(a9, 'vendor getAll ack');
  expect(Array.isArray(a9.messages) && a9.messages.length === 0, 'vendor getAll: messages should be []', a9);
  await south.inbox.quiet('south-hub quiet window at the end', () => true, 0);
}

async function refusalWrongToken(c) {
  const secret = `wrong-token-${randomBytes(4).toString('hex')}`;
  const err = await c.refused('/vendor', { vendorId: 'acme-widgets', token: secret }, 'vendor with wrong token');
  expect(
    typeof err.message === 'string' && err.message.startsWith('unauthorized: '),
    "wrong token: connect_error message should start with 'unauthorized: '",
    err.message,
  );
  expect(!err.message.includes(secret), 'wrong token: the token must never be echoed back', err.message);
}

async function refusalNoAuth(c) {
  const err = await c.refused('/vendor', undefined, 'vendor without auth');
  expect(
    typeof err.message === 'string' && err.message.startsWith('bad_auth: '),
    "no auth: connect_error message should start with 'bad_auth: '",
    err.message,
  );
}

async function refusalUnknownNamespace(c) {
  const err = await c.refused('/nope', { token: 'demo-admin' }, 'client of /nope');
  expect(err.message === 'Invalid namespace', "namespace /nope: connect_error message should be 'Invalid namespace'", err.message);
}

async function errorEnvelope(c) {
  const vendor = await c.connect('/vendor', VENDOR, 'vendor acme-widgets');
  const a = await ack(vendor.socket, 'vendor', 'pickup', {});
  expect(a !== null && typeof a === 'object', 'pickup {}: ack must be an object', a);
  expect(a.ok === false, 'pickup {}: expected ok:false', a);
  expect(a.error !== null && typeof a.error === 'object', 'pickup {}: expected an error object', a);
  expect(a.error.code === 'invalid_payload', "pickup {}: error.code should be 'invalid_payload'", a);
  expect(typeof a.error.message === 'string' && a.error.message.length > 0, 'pickup {}: error.message must be a non-empty string', a);
}

async function chatBroadcast(c) {
  const alice = await c.connect('/chat', { name: 'alice' }, 'chat alice');
  const [bob, carol] = await Promise.all([
    c.connect('/chat', { name: 'bob' }, 'chat bob'),
    c.connect('/chat', { name: 'carol' }, 'chat carol'),
  ]);
  const a = await ack(alice.socket, 'alice', 'chat message', { text: 'hello' });
  expectOk(a, 'chat message ack');
  expectTime(a.at, 'chat message ack: at');
  for (const [who, peer] of [['bob', bob], ['carol', carol]]) {
    const m = await peer.inbox.next('chat message');
    expect(m !== null && typeof m === 'object', `${who}: chat message must be an object`, m);
    expect(m.from === 'alice', `${who}: chat message.from should be 'alice'`, m);
    expect(m.text === 'hello', `${who}: chat message.text should be 'hello'`, m);
    expectTime(m.at, `${who}: chat message.at`);
  }
  await alice.inbox.quiet('alice quiet window (the sender must not get its own message)', (ev) => ev === 'chat message');
}

// Chat v2: `users`, `online`, unique names in any script (NFC), offsets,
// the replay of what was missed (auth as a function, as the chat page
// sends it) and a room's history in the `join` ack.
async function chatHistory(c, t) {
  const ana = await c.connect('/chat', { name: `Ana ${t.label}` }, 'chat Ana');
  const users = await ana.inbox.next('users');
  expect(Array.isArray(users.users) && users.users.includes(`Ana ${t.label}`), "users must name the newcomer", users);
  expect(users.online === users.users.length, 'users.online must count users.users', users);
  const said = await ack(ana.socket, 'Ana', 'chat message', { text: `history ${t.label}` });
  expectOk(said, 'chat message ack');
  expect(Number.isInteger(said.offset) && said.offset > 0, 'chat message ack: offset must be a positive integer', said);
  const taken = await c.refused('/chat', { name: `ana ${t.label}` }, 'a second Ana');
  expect(
    taken.message === `name_taken: someone called ana ${t.label} is already here`,
    'a second Ana (other case) must be refused with name_taken',
    taken.message,
  );
  // "Jose" + U+0301 COMBINING ACUTE ACCENT is the name "José" (NFC).
  const jose = await c.connect(
    '/chat',
    (cb) => cb({ name: `Jose\u0301 ${t.label}`, offset: said.offset - 1 }),
    'chat José',
  );
  const replayed = await jose.inbox.next('chat message');
  expect(
    replayed.offset === said.offset && replayed.text === `history ${t.label}` && replayed.from === `Ana ${t.label}`,
    'José must first get the message after his offset',
    replayed,
  );
  const seen = await jose.inbox.next('users');
  expect(seen.users.includes(`José ${t.label}`) && seen.online === 2, 'users after the replay, NFC names', seen);
  const hello = await ana.inbox.next('user connected');
  expect(hello.name === `José ${t.label}` && hello.online === 2 && !('users' in hello), 'user connected: { name, online }', hello);
  const room = `r-${t.label}`;
  expectOk(await ack(ana.socket, 'Ana', 'join', { room }), 'join ack');
  const inRoom = await ack(ana.socket, 'Ana', 'chat message', { text: 'in the room', room });
  const joined = await ack(jose.socket, 'José', 'join', { room, offset: 0 });
  expectOk(joined, 'join ack');
  expect(
    Array.isArray(joined.history) && joined.history.length === 1 && joined.history[0].offset === inRoom.offset && joined.history[0].room === room,
    "join must answer the room's history",
    joined,
  );
}

// Reading current state: `orders` pages and the live `order` notices.
async function currentState(c, t) {
  const [tabA, tabB, northA, northB] = await Promise.all([
    c.connect('/vendor', VENDOR, 'vendor tab A'),
    c.connect('/vendor', VENDOR, 'vendor tab B'),
    c.connect('/distributor', NORTH, 'north-hub tab A'),
    c.connect('/distributor', NORTH, 'north-hub tab B'),
  ]);
  const stamp = `${t.label}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const ids = [`s1-${stamp}`, `s2-${stamp}`];
  for (const orderId of ids) {
    const a = await ack(tabA.socket, 'vendor tab A', 'pickup', { orderId, distributorId: 'north-hub', customer: 'Jamie Doe', address: 'Seattle, WA' });
    expectOk(a, 'pickup ack');
    // The other tab hears of the new order; the sender has its ack.
    const notice = await tabB.inbox.next('order');
    expectOrder(notice.order, { orderId, status: 'pending' }, 'vendor tab B order notice');
  }
  await tabA.inbox.quiet('vendor tab A quiet window (no notice of its own pickups)', (ev) => ev === 'order');

  const moved = await ack(northA.socket, 'north-hub tab A', 'in-transit', { vendorId: 'acme-widgets', orderId: ids[0] });
  expectOk(moved, 'in-transit ack');
  const notice = await northB.inbox.next('order');
  expectOrder(notice.order, { orderId: ids[0], status: 'in-transit' }, 'north-hub tab B order notice');
  await tabB.inbox.next('in-transit');

  // Newest first, one a page, the cursor of the first page leads to the second.
  const first = await ack(tabB.socket, 'vendor tab B', 'orders', { status: 'open', limit: 1 });
  expectOk(first, 'orders ack');
  expect(Array.isArray(first.orders) && first.orders.length === 1, 'orders: one order a page', first);
  expectOrder(first.orders[0], { orderId: ids[0], status: 'in-transit' }, 'the most recently updated order first');
  expect(typeof first.next === 'string' && first.next.length > 0, 'orders: next must be a cursor', first);
  const second = await ack(tabB.socket, 'vendor tab B', 'orders', { status: 'open', limit: 1, before: first.next });
  expectOrder(second.orders[0], { orderId: ids[1], status: 'pending' }, 'the second page');
  const transit = await ack(northB.socket, 'north-hub tab B', 'orders', { status: 'in-transit', limit: 500 });
  expectOk(transit, 'distributor orders ack');
  expect(transit.orders.some((o) => o.orderId === ids[0]), 'north-hub lists the order it moved', transit);
  expect(transit.orders.every((o) => o.status === 'in-transit'), 'only in-transit orders', transit);
  const bad = await ack(tabA.socket, 'vendor tab A', 'orders', { limit: 0 });
  expect(bad.ok === false && bad.error.code === 'invalid_payload', 'orders { limit: 0 }: invalid_payload', bad);
  const plain = await withTimeout(tabA.socket.emitWithAck('orders'), STEP_TIMEOUT_MS, 'orders with no argument');
  expectOk(plain, 'orders with no argument');

  // Leave the queues empty for the checks that follow.
  for (const [who, side] of [['north-hub tab A', northA], ['vendor tab A', tabA]]) {
    const queued = await ack(side.socket, who, 'getAll', {});
    for (const m of queued.messages) expectOk(await ack(side.socket, who, 'received', { messageId: m.messageId }), `${who} received`);
  }
}

const CHECKS = [
  ['round trip pickup -> in-transit -> delivered', roundTrip],
  ['refusal: wrong token', refusalWrongToken],
  ['refusal: no auth', refusalNoAuth],
  ['refusal: unknown namespace', refusalUnknownNamespace],
  ['error envelope: pickup {}', errorEnvelope],
  ['chat broadcast', chatBroadcast],
  ['chat v2: users, unique names, history', chatHistory],
  ['current state: orders pages and order notices', currentState],
];

// ---------------------------------------------------------------- main

async function main() {
  const binArg = process.argv[2];
  if (!binArg) {
    console.error('usage: node tests/js/check.mjs /path/to/parcel-hub-binary');
    process.exit(2);
  }
  const bin = resolve(binArg);
  let passed = 0;
  let failed = 0;
  let hub = null;

  const interrupted = async (sig) => {
    console.log(`[check] ${sig}: stopping the hub`);
    await stopHub(hub);
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  try {
    if (!existsSync(bin)) throw new Error(`no such file: ${bin}`);
    hub = startHub(bin);
    const port = await hub.port;
    console.log(`[check] hub is listening on port ${port}`);

    for (const t of TRANSPORTS) {
      for (const [name, fn] of CHECKS) {
        const c = new Clients(port, t);
        const started = Date.now();
        try {
          await withTimeout(fn(c, t), CHECK_TIMEOUT_MS, `whole check '${name}'`);
          passed++;
          console.log(`PASS [${t.label}] ${name} (${Date.now() - started} ms)`);
        } catch (e) {
          failed++;
          const why = e instanceof CheckError ? e.message : e.stack || String(e);
          console.log(`FAIL [${t.label}] ${name}: ${why}`);
          if (hub.exited) console.log(`[check] the hub has exited (${hub.exitInfo})`);
        } finally {
          c.closeAll();
        }
      }
    }
  } catch (e) {
    failed++;
    console.log(`FAIL [startup] ${e.message}`);
  } finally {
    await stopHub(hub);
  }

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main();
