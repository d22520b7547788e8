#!/usr/bin/env node
// Learners' CAPS lab clients against parcel-hub's `/caps`, unchanged.
//
// Usage: node tests/caps/run.mjs /path/to/parcel-hub-binary
//
// The clients under `labs/` are written from the Code Fellows 401 CAPS lab
// texts (Phase 2 and Phase 3) and from the spellings found in cohorts'
// review code: lowercase and capitalised events, flat and wrapped payloads,
// `DELIVERY`, `recieved`, `get-orders`, a store name with a space. Each is
// a separate Node process, started as a learner would (`node vendor.js`,
// with `SERVER_URL` set), printing its own lines. Every check starts the
// real binary on 127.0.0.1:0 with a fresh SQLite file (its demo
// credentials serve `/caps`), runs the clients, and asserts what the
// learner sees (the vendor's thank-you naming the customer) and what the
// hub keeps (queues, through `GET /api/inspect`; orders, through the HTTP
// listings). One PASS/FAIL line per check, then `N passed, M failed`.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const HERE = dirname(fileURLToPath(import.meta.url));
const STARTUP_TIMEOUT_MS = 20_000;
const STEP_TIMEOUT_MS = 10_000;
const ADMIN = 'Bearer demo-admin';

const binary = process.argv[2] && resolve(process.argv[2]);
if (!binary) {
  console.error('usage: node tests/caps/run.mjs /path/to/parcel-hub');
  process.exit(2);
}

class CheckError extends Error {}
const expect = (cond, message) => {
  if (!cond) throw new CheckError(message);
};

// ---------------------------------------------------------------- processes

/** A running process whose stdout lines are kept and can be waited for. */
class Proc {
  constructor(label, command, args, env) {
    this.label = label;
    this.lines = [];
    this.waiters = [];
    this.child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((done) => this.child.on('exit', (code) => done(code)));
    const keep = (line) => {
      this.lines.push(line);
      for (const w of [...this.waiters]) w();
    };
    createInterface({ input: this.child.stdout }).on('line', keep);
    this.stderr = [];
    createInterface({ input: this.child.stderr }).on('line', (line) => this.stderr.push(line));
  }

  /** Resolves once `count` lines match `pattern`. */
  waitFor(pattern, count = 1, ms = STEP_TIMEOUT_MS) {
    const matching = () => this.lines.filter((l) => pattern.test(l));
    return new Promise((done, fail) => {
      const check = () => {
        if (matching().length >= count) {
          this.waiters = this.waiters.filter((w) => w !== check);
          clearTimeout(timer);
          done(matching());
        }
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        fail(new CheckError(`${this.label}: no ${count} line(s) matching ${pattern} within ${ms} ms; it printed:\n  ${this.lines.join('\n  ')}\n  stderr: ${this.stderr.slice(-5).join('\n  ')}`));
      }, ms);
      this.waiters.push(check);
      check();
    });
  }

  /** Resolves with the exit code, failing after `ms`. */
  async exit(ms = STEP_TIMEOUT_MS) {
    let timer;
    const code = await Promise.race([
      this.exited,
      new Promise((_, fail) => {
        timer = setTimeout(() => fail(new CheckError(`${this.label} did not exit within ${ms} ms; it printed:\n  ${this.lines.join('\n  ')}`)), ms);
      }),
    ]).finally(() => clearTimeout(timer));
    return code;
  }

  kill() {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** The hub: the real binary on a free loopback port, on a fresh database. */
async function startHub(dir) {
  const hub = new Proc('hub', binary, ['--listen', '127.0.0.1:0', '--db', join(dir, 'hub.db')], { NO_COLOR: '1' });
  const [line] = await hub.waitFor(/^listening on /, 1, STARTUP_TIMEOUT_MS);
  hub.url = line.replace('listening on ', '').trim();
  return hub;
}

/** A lab client (`labs/<lab>/<role>.js`) as a learner runs it. */
function client(hub, lab, role, env = {}) {
  return new Proc(`${lab}/${role}${env.STORE ? ` (${env.STORE})` : ''}`, process.execPath, [join(HERE, 'labs', lab, `${role}.js`)], {
    SERVER_URL: hub.url,
    ...env,
  });
}

async function inspect(hub) {
  const response = await fetch(`${hub.url}/api/inspect`, { headers: { authorization: ADMIN } });
  expect(response.ok, `GET /api/inspect answered ${response.status}`);
  return response.json();
}

/** The depth of each lab queue (`vendor:caps.…`, `distributor:caps.drivers`). */
async function labQueues(hub) {
  const snapshot = await inspect(hub);
  return Object.fromEntries(snapshot.queues.filter((q) => q.owner.includes(':caps.')).map((q) => [q.owner, q.depth]));
}

/** Waits until the lab queues are exactly `want` (`{}`: all empty). */
async function queuesBecome(hub, want, ms = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  let got;
  while (Date.now() < deadline) {
    got = await labQueues(hub);
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new CheckError(`lab queues are ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

/** A party's orders over HTTP (`vendors` or `distributors`), as `id:token`. */
async function orders(hub, kind, id, token) {
  const basic = Buffer.from(`${id}:${token}`).toString('base64');
  const response = await fetch(`${hub.url}/api/${kind}/${encodeURIComponent(id)}/orders?status=all&limit=500`, {
    headers: { authorization: `Basic ${basic}` },
  });
  const body = await response.json();
  expect(response.ok && body.ok, `GET ${kind}/${id}/orders answered ${response.status} ${JSON.stringify(body)}`);
  return body.orders;
}

// ---------------------------------------------------------------- checks

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

check('phase 2 as the lab text says: pickup -> in-transit -> delivered -> the vendor thanks, naming the customer', async (hub, procs) => {
  // A Phase 2 driver has no queue: it hears only the pickups sent while it is connected.
  const driver = procs(client(hub, 'phase2-text', 'driver'));
  await driver.waitFor(/DRIVER: ready/);
  const vendor = procs(client(hub, 'phase2-text', 'vendor', { STORE: '1-206-flowers', ORDERS: '3' }));
  await vendor.waitFor(/Thank you for delivering 1-206-flowers-\d+-\d, Customer \d of 1-206-flowers/, 3);
  expect((await vendor.exit()) === 0, 'the vendor leaves once every order was delivered');
  await driver.waitFor(/DRIVER: picked up 1-206-flowers-/, 3);
  const mine = await orders(hub, 'vendors', 'caps.1-206-flowers', '');
  expect(mine.length === 3 && mine.every((o) => o.status === 'delivered'), `three delivered orders of caps.1-206-flowers: ${JSON.stringify(mine)}`);
});

check('phase 2 in capitals, DELIVERY for the last step, no room: the vendor still hears back', async (hub, procs) => {
  const driver = procs(client(hub, 'phase2-capitals', 'driver'));
  await driver.waitFor(/DRIVER: ready/);
  const vendor = procs(client(hub, 'phase2-capitals', 'vendor', { STORE: '1-800-flowers', ORDERS: '2' }));
  await vendor.waitFor(/Thanks for delivering the package to Shopper \d/, 2);
  expect((await vendor.exit()) === 0, 'the vendor leaves once both orders were delivered');
});

check('phase 3 as the lab text says: two stores and a driver, wrapped payloads, getAll and received; every queue empties', async (hub, procs) => {
  procs(client(hub, 'phase3-text', 'driver'));
  const acme = procs(client(hub, 'phase3-text', 'vendor', { STORE: 'acme-widgets', ORDERS: '2' }));
  const flowers = procs(client(hub, 'phase3-text', 'vendor', { STORE: '1-800-flowers', ORDERS: '2' }));
  const acmeThanks = await acme.waitFor(/acme-widgets: Thank you for your order, Patron \d \(acme-widgets-/, 2);
  await flowers.waitFor(/1-800-flowers: Thank you for your order, Patron \d \(1-800-flowers-/, 2);
  expect(acmeThanks.length === 2, 'each store thanks for its own orders only');
  await acme.exit();
  await flowers.exit();
  expect(!acme.lines.some((l) => l.includes('(1-800-flowers-')), 'acme-widgets never heard of 1-800-flowers orders');
  await queuesBecome(hub, {});
  // The lab store 1-800-flowers is not the demo vendor 1-800-flowers.
  const real = await orders(hub, 'vendors', '1-800-flowers', 'demo-flowers');
  expect(real.length === 0, `the demo vendor 1-800-flowers has no lab orders: ${JSON.stringify(real)}`);
  const lab = await orders(hub, 'vendors', 'caps.1-800-flowers', 'any');
  expect(lab.length === 2, `the lab store has its two orders: ${JSON.stringify(lab)}`);
  const pool = await orders(hub, 'distributors', 'caps.drivers', '');
  expect(pool.length === 4, `the lab drivers carried all four: ${pool.length}`);
});

check('phase 3 in capitals: a driver offline during the pickups catches up with GET-ALL and confirms', async (hub, procs) => {
  const vendor = procs(client(hub, 'phase3-capitals', 'vendor', { STORE: '1-800-flowers', ORDERS: '3' }));
  await vendor.waitFor(/VENDOR: order .* ready for pickup/, 3);
  await queuesBecome(hub, { 'distributor:caps.drivers': 3 });
  const driver = procs(client(hub, 'phase3-capitals', 'driver'));
  await driver.waitFor(/DRIVER: package has been delivered/, 3);
  await vendor.waitFor(/Thanks for delivering the package to Buyer \d/, 3);
  expect((await vendor.exit()) === 0, 'the vendor leaves once all three were delivered');
  await queuesBecome(hub, {});
});

check('a vendor offline during the delivery catches up with get-orders and confirms with recieved; a store name with a space', async (hub, procs) => {
  const driver = procs(client(hub, 'variants', 'driver'));
  await driver.waitFor(/DRIVER: ready/);
  const sender = procs(client(hub, 'variants', 'vendor', { MODE: 'send', ORDERS: '2' }));
  await sender.exit();
  await driver.waitFor(/DRIVER: delivered v-/, 2);
  await queuesBecome(hub, { 'vendor:caps.ACME_20Widgets': 4 });
  const back = procs(client(hub, 'variants', 'vendor', { MODE: 'catch-up', EXPECT: '2' }));
  await back.waitFor(/ACME Widgets: Thank you, Guest \d \(v-\d+-\d\)/, 2);
  expect((await back.exit()) === 0, 'the vendor leaves once both deliveries were confirmed');
  await queuesBecome(hub, {});
});

check('phase 3 text vendor back after the delivery confirms with received { clientId, event, messageId: orderId }', async (hub, procs) => {
  const sender = procs(client(hub, 'phase3-text', 'vendor', { STORE: 'acme-widgets', MODE: 'send', ORDERS: '2' }));
  await sender.exit();
  const driver = procs(client(hub, 'phase3-text', 'driver'));
  await driver.waitFor(/DRIVER: delivered acme-widgets-/, 2);
  await queuesBecome(hub, { 'vendor:caps.acme-widgets': 4 });
  const back = procs(client(hub, 'phase3-text', 'vendor', { STORE: 'acme-widgets', MODE: 'catch-up', EXPECT: '2' }));
  await back.waitFor(/acme-widgets: Thank you for your order, Patron \d/, 2);
  await back.exit();
  await queuesBecome(hub, {});
});

check('every lab event shows in the inspector feed: the pickup in, the broadcast out, a refused namespace with its reason', async (hub, procs) => {
  const { io } = await import('socket.io-client');
  const inspector = io(`${hub.url}/inspector`, { auth: { token: 'demo-admin' }, transports: ['websocket'] });
  const records = [];
  inspector.on('activity', (r) => records.push(r));
  await new Promise((done, fail) => {
    inspector.on('snapshot', done);
    setTimeout(() => fail(new CheckError('no snapshot')), STEP_TIMEOUT_MS);
  });
  try {
    const driver = procs(client(hub, 'phase2-text', 'driver'));
    await driver.waitFor(/DRIVER: ready/);
    const vendor = procs(client(hub, 'phase2-text', 'vendor', { STORE: 'Feed Store' }));
    await vendor.exit();
    const root = io(hub.url, { forceNew: true, transports: ['websocket'] });
    const refusal = await new Promise((done) => root.on('connect_error', (e) => done(e.message)));
    root.close();
    expect(refusal === 'Invalid namespace', `the root namespace is refused as before: ${refusal}`);
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    const has = (pred) => records.some(pred);
    const want = [
      (r) => r.namespace === '/caps' && r.direction === 'in' && r.event === 'pickup' && r.outcome === 'ok',
      (r) => r.namespace === '/caps' && r.direction === 'out' && r.event === 'pickup' && r.target === 'broadcast',
      (r) => r.namespace === '/caps' && r.direction === 'out' && r.event === 'delivered' && r.target === 'room store:caps.Feed_20Store',
      (r) => r.namespace === '/' && r.event === 'connect' && r.outcome === 'invalid_namespace' && /\/caps/.test(r.reason),
    ];
    while (!want.every(has) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    want.forEach((pred, i) => expect(has(pred), `feed record ${i + 1} is missing; got ${JSON.stringify(records.map((r) => [r.namespace, r.direction, r.event, r.outcome, r.target]))}`));
    const snapshot = await inspect(hub);
    expect(snapshot.namespaces.some((n) => n.name === '/caps'), 'the snapshot lists /caps');
  } finally {
    inspector.close();
  }
});

// ---------------------------------------------------------------- main

let passed = 0;
let failed = 0;
for (const { name, fn } of checks) {
  const dir = mkdtempSync(join(tmpdir(), 'parcel-hub-caps-'));
  const started = [];
  let hub;
  try {
    hub = await startHub(dir);
    started.push(hub);
    await fn(hub, (p) => {
      started.push(p);
      return p;
    });
    passed += 1;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}\n     ${e instanceof CheckError ? e.message : e.stack}`);
  } finally {
    for (const p of started.reverse()) p.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
