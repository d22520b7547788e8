#!/usr/bin/env node
// Browser tests of parcel-hub's pages in headless Chromium (Debian's
// `chromium`, driven by playwright-core), against the real binary.
//
// Usage: node tests/browser/pages.test.mjs /path/to/parcel-hub [artifacts-dir]
//
// It starts the hub on 127.0.0.1:0 with a fresh database and the local copy
// of the Socket.IO browser client from node_modules (so nothing is fetched
// from the Internet), opens the pages, plays the scenarios of issues 3 and
// 11 (reloads, two tabs of one distributor, a lost connection, a lost
// ack), steps through one lesson on /learn, saves a screenshot of every page to
// artifacts/, prints one PASS/FAIL line per check and, last,
// `N passed, M failed`. Exit code 0 only when all passed.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CLIENT_JS = join(HERE, 'node_modules/socket.io-client/dist/socket.io.min.js');
const STARTUP_TIMEOUT_MS = 20_000; // the hub must print its address within this
const STEP_TIMEOUT_MS = 10_000; // every single wait in a page
const QUIET_WINDOW_MS = 700; // "nothing arrives" windows
const CHECK_TIMEOUT_MS = 60_000; // hard cap for one whole check

const binary = process.argv[2];
const artifacts = resolve(process.argv[3] || join(HERE, 'artifacts'));
if (!binary || !existsSync(binary)) {
  console.error('usage: node pages.test.mjs /path/to/parcel-hub [artifacts-dir]');
  process.exit(2);
}
if (!existsSync(CLIENT_JS)) {
  console.error(`missing ${CLIENT_JS}: run npm ci in ${HERE}`);
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const results = [];
const problems = []; // console errors, page errors, dialogs: any of them fails the run
const dataDir = mkdtempSync(join(tmpdir(), 'parcel-hub-browser-'));
let hub = null;
let cdnHub = null; // a second hub without --client-js
let context = null;

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function check(name, body) {
  let timer;
  try {
    await Promise.race([
      body(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    results.push(true);
    console.log(`PASS ${name}`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL ${name}: ${e && e.message ? e.message.split('\n')[0] : e}`);
  } finally {
    clearTimeout(timer);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function startHub(name, extraArgs) {
  return new Promise((resolveStart, rejectStart) => {
    const child = spawn(
      binary,
      ['--listen', '127.0.0.1:0', '--db', join(dataDir, `${name}.db`), ...extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } },
    );
    const timer = setTimeout(() => rejectStart(new Error('the hub did not print its address in time')), STARTUP_TIMEOUT_MS);
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.on('exit', (code) => rejectStart(new Error(`the hub exited early (${code}): ${stderr}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolveStart({ child, base: match[1] });
      }
    });
  });
}

/** A new tab that records console errors, page errors and dialogs. */
async function openPage(label, path) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`${label}: console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`${label}: page error: ${err.message}`));
  page.on('dialog', async (dialog) => {
    problems.push(`${label}: a ${dialog.type()} dialog opened: ${dialog.message()}`);
    await dialog.dismiss();
  });
  await page.goto(`${hub.base}${path}`);
  return page;
}

async function signIn(page, idField, id, token) {
  if (idField) await page.fill(`#signin-form [name="${idField}"]`, id);
  await page.fill('#signin-form [name="token"]', token);
  await page.click('#signin-form button[type="submit"]');
  await page.waitForSelector('#conn[data-state="connected"]');
  await page.waitForSelector('#console', { state: 'visible' });
}

async function sendPickup(vendorPage, distributorId, customer, address) {
  const orderId = await vendorPage.inputValue('#pickup-form [name="orderId"]');
  await vendorPage.selectOption('#pickup-form [name="distributorId"]', distributorId);
  await vendorPage.fill('#pickup-form [name="customer"]', customer);
  await vendorPage.fill('#pickup-form [name="address"]', address);
  await vendorPage.click('#pickup-form button[type="submit"]');
  await vendorPage.waitForSelector(`#orders .order[data-order-id="${orderId}"][data-status="pending"]`);
  // The form offers a fresh id for the next pickup.
  await vendorPage.waitForFunction(
    (used) => document.querySelector('#pickup-form [name="orderId"]').value !== used,
    orderId,
  );
  return orderId;
}

async function screenshot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

async function inspect() {
  const response = await fetch(`${hub.base}/api/inspect`, { headers: { authorization: 'Bearer demo-admin' } });
  assert(response.status === 200, `GET /api/inspect answered ${response.status}`);
  return response.json();
}

async function main() {
  hub = await startHub('hub', ['--client-js', CLIENT_JS]);
  context = await chromium.launchPersistentContext(join(dataDir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });

  let vendor;
  let north;
  let south;
  let orderId;

  await check('the home page links every page and shows the demo credentials', async () => {
    const home = await openPage('home', '/');
    for (const href of ['/vendor', '/distributor', '/chat', '/inspector', '/learn']) {
      assert((await home.locator(`nav a[href="${href}"]`).count()) === 1, `no nav link to ${href}`);
    }
    const text = await home.textContent('main');
    for (const token of ['demo-acme', 'demo-north', 'demo-admin']) assert(text.includes(token), `${token} is not shown`);
    await screenshot(home, 'home');
    await home.close();
  });

  await check('a wrong vendor token is refused with the hub\'s reason', async () => {
    const page = await openPage('vendor-refused', '/vendor');
    await page.fill('#signin-form [name="vendorId"]', 'acme-widgets');
    await page.fill('#signin-form [name="token"]', 'not-the-token');
    await page.click('#signin-form button[type="submit"]');
    await page.waitForSelector('#conn[data-state="error"]');
    const error = await page.textContent('#signin-error');
    assert(error.includes('unauthorized'), `error says ${JSON.stringify(error)}`);
    assert(await page.isHidden('#console'), 'the console opened for a refused vendor');
    await screenshot(page, 'vendor-refused');
    await page.close();
  });

  await check('a vendor page sends a pickup to north-hub', async () => {
    north = await openPage('distributor-north', '/distributor');
    await signIn(north, 'distributorId', 'north-hub', 'demo-north');
    south = await openPage('distributor-south', '/distributor');
    await signIn(south, 'distributorId', 'south-hub', 'demo-south');
    vendor = await openPage('vendor', '/vendor');
    await vendor.click('.chip[data-id="acme-widgets"]');
    await signIn(vendor, null, null, await vendor.inputValue('#signin-form [name="token"]'));
    orderId = await sendPickup(vendor, 'north-hub', 'Jamie <b>Doe</b>', 'Seattle, WA');
    const result = await vendor.textContent('#pickup-result');
    assert(result.includes('sent to north-hub'), `pickup result says ${JSON.stringify(result)}`);
  });

  await check('the north-hub page shows the pickup and the south-hub page does not', async () => {
    const card = `#pickups .order[data-order-id="${orderId}"]`;
    await north.waitForSelector(card);
    const meta = await north.textContent(`${card} .order-meta`);
    assert(meta.includes('Jamie <b>Doe</b>'), `customer shown as ${JSON.stringify(meta)}`);
    assert((await north.locator(`${card} b`).count()) === 0, 'the customer name became markup');
    await sleep(QUIET_WINDOW_MS);
    assert((await south.locator('#pickups .order').count()) === 0, 'south-hub received a pickup for north-hub');
  });

  await check('the distributor marks it in transit, then delivered, and it moves to Done', async () => {
    const card = `#pickups .order[data-order-id="${orderId}"]`;
    assert((await north.locator(`${card} button[data-action="delivered"]`).count()) === 0, 'delivered is offered before in-transit');
    await north.click(`${card} button[data-action="in-transit"]`);
    await north.waitForSelector(`${card}[data-status="in-transit"]`);
    assert((await north.locator(`${card} button[data-action="in-transit"]`).count()) === 0, 'in-transit is still offered');
    await north.click(`${card} button[data-action="delivered"]`);
    await north.waitForSelector(`#done .order[data-order-id="${orderId}"][data-status="delivered"]`);
    assert((await north.locator(card).count()) === 0, 'a delivered order stayed among the open ones');
    assert((await north.locator('#done button').count()) === 0, 'Done shows buttons');
  });

  await check('the vendor page shows both statuses and confirms both notices', async () => {
    const card = `#orders .order[data-order-id="${orderId}"]`;
    await vendor.waitForSelector(`${card}[data-status="delivered"]`);
    const timeline = await vendor.textContent(`${card} .timeline`);
    assert(timeline.includes('pending') && timeline.includes('in transit') && timeline.includes('delivered'), `timeline is ${timeline}`);
    await vendor.waitForSelector('#notices li[data-event="in-transit"] .confirmed');
    await vendor.waitForSelector('#notices li[data-event="delivered"] .confirmed');
    await screenshot(vendor, 'vendor');
  });

  await check('an offline distributor receives the queued pickups when it reconnects', async () => {
    await north.check('#offline');
    await north.waitForSelector('#conn[data-state="idle"]');
    assert(await north.isVisible('#offline-note'), 'no offline note');
    const first = await sendPickup(vendor, 'north-hub', 'Ada Lovelace', 'London');
    const second = await sendPickup(vendor, 'north-hub', 'Alan Turing', 'Manchester');
    await sleep(QUIET_WINDOW_MS);
    for (const id of [first, second]) {
      assert((await north.locator(`#pickups .order[data-order-id="${id}"]`).count()) === 0, `${id} arrived while offline`);
    }
    const queued = (await inspect()).queues.find((q) => q.owner === 'distributor:north-hub');
    assert(queued && queued.depth === 2, `north-hub queue is ${JSON.stringify(queued)}`);
    await north.uncheck('#offline');
    await north.waitForSelector('#conn[data-state="connected"]');
    for (const id of [first, second]) await north.waitForSelector(`#pickups .order[data-order-id="${id}"][data-status="pending"]`);
    // Both are confirmed with `received`, so the queue empties.
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    for (;;) {
      const left = (await inspect()).queues.find((q) => q.owner === 'distributor:north-hub');
      if (!left) break;
      assert(Date.now() < deadline, `north-hub queue still holds ${left.depth}`);
      await sleep(100);
    }
    await screenshot(north, 'distributor-north');
    await screenshot(south, 'distributor-south');
  });

  await check('the vendor page names the customer in its notices, as text', async () => {
    const line = await vendor.textContent('#notices li[data-event="delivered"]');
    assert(line.includes('Jamie <b>Doe</b>') && line.includes(orderId), `the notice says ${JSON.stringify(line)}`);
    assert((await vendor.locator('#notices b').count()) === 0, 'the customer name became markup');
  });

  await check('a reload of the vendor page shows its orders as they are', async () => {
    const before = await vendor.textContent('#order-count');
    await vendor.reload();
    await vendor.waitForSelector('#conn[data-state="connected"]');
    await vendor.waitForSelector('#console', { state: 'visible' });
    const card = `#orders .order[data-order-id="${orderId}"][data-status="delivered"]`;
    await vendor.waitForSelector(card);
    const steps = await vendor.locator(`${card} .timeline li`).count();
    assert(steps === 3, `the timeline shows ${steps} steps after the reload`);
    await vendor.waitForFunction((n) => document.querySelector('#order-count').textContent === n, before);
    assert(await vendor.isEnabled('#pickup-form button[type="submit"]'), 'Send pickup is disabled while connected');
    await screenshot(vendor, 'vendor-reloaded');
  });

  await check('a reload of the distributor page keeps open pickups with their actions and delivered ones in Done', async () => {
    await north.reload();
    await north.waitForSelector('#conn[data-state="connected"]');
    await north.waitForSelector(`#done .order[data-order-id="${orderId}"][data-status="delivered"]`);
    const open = await north.$$eval('#pickups .order', (cards) => cards.map((c) => [c.dataset.status, c.querySelector('button[data-action]')?.dataset.action, c.querySelector('button[data-action]')?.disabled]));
    assert(open.length === 2, `${open.length} open pickups after the reload`);
    assert(open.every(([status, action, disabled]) => status === 'pending' && action === 'in-transit' && !disabled), `open cards: ${JSON.stringify(open)}`);
    assert((await north.textContent('#done-count')) === '1', 'Done does not count one order');
    await screenshot(north, 'distributor-reloaded');
  });

  await check('two tabs of one distributor stay in step', async () => {
    const tabB = await openPage('distributor-north-b', '/distributor');
    await signIn(tabB, 'distributorId', 'north-hub', 'demo-north');
    const ids = await north.$$eval('#pickups .order', (cards) => cards.map((c) => c.dataset.orderId));
    await tabB.waitForSelector(`#pickups .order[data-order-id="${ids[0]}"]`);
    // Tab A moves it; tab B shows it moved.
    await north.click(`#pickups .order[data-order-id="${ids[0]}"] button[data-action="in-transit"]`);
    await tabB.waitForSelector(`#pickups .order[data-order-id="${ids[0]}"][data-status="in-transit"] button[data-action="delivered"]:not([disabled])`);
    // Tab B delivers it; it goes to Done in both.
    await tabB.click(`#pickups .order[data-order-id="${ids[0]}"] button[data-action="delivered"]`);
    for (const tab of [north, tabB]) {
      await tab.waitForSelector(`#done .order[data-order-id="${ids[0]}"][data-status="delivered"]`);
      assert((await tab.locator(`#pickups .order[data-order-id="${ids[0]}"]`).count()) === 0, 'the delivered order is still open');
    }
    await screenshot(tabB, 'distributor-second-tab');
    await tabB.close();
  });

  await check('Send pickup waits for the connection, and a reconnect shows what happened meanwhile', async () => {
    // This tab's WebSocket goes through a gate the test can close.
    let blocked = false;
    let live = null;
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('pageerror', (err) => problems.push(`vendor-gated: page error: ${err.message}`));
    page.on('console', (msg) => {
      // A WebSocket refused by the closed gate is logged by Chromium itself.
      if (msg.type() === 'error' && !msg.text().includes('WebSocket')) problems.push(`vendor-gated: console error: ${msg.text()}`);
    });
    await page.routeWebSocket(/\/socket\.io\//, (ws) => {
      if (blocked) return ws.close();
      live = ws.connectToServer();
    });
    await page.goto(`${hub.base}/vendor`);
    await signIn(page, 'vendorId', 'acme-widgets', 'demo-acme');
    assert(await page.isEnabled('#pickup-form button[type="submit"]'), 'Send pickup is disabled while connected');
    blocked = true;
    await live.close();
    await page.waitForSelector('#conn[data-state="connecting"]');
    assert(await page.isDisabled('#pickup-form button[type="submit"]'), 'Send pickup is enabled while disconnected');
    assert(await page.isVisible('#send-offline'), 'no word that the page is not connected');
    // Meanwhile a pickup comes over HTTP, and its live notice cannot reach this tab.
    const response = await fetch(`${hub.base}/api/pickups`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('acme-widgets:demo-acme').toString('base64')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ orderId: 'o-while-away', distributorId: 'south-hub', customer: 'Mae Jemison', address: 'Decatur, AL' }),
    });
    assert(response.status === 201, `POST /api/pickups answered ${response.status}`);
    blocked = false;
    await page.waitForSelector('#conn[data-state="connected"]', { timeout: 20_000 });
    await page.waitForSelector('#orders .order[data-order-id="o-while-away"][data-status="pending"]');
    assert(await page.isEnabled('#pickup-form button[type="submit"]'), 'Send pickup stays disabled after the reconnect');
    await page.close();
  });

  await check('after an ack timeout the vendor page asks the hub whether the pickup was recorded', async () => {
    // The gate drops either the pickup itself or only the hub's answer to it.
    let drop = null;
    const page = await openPage('vendor-timeout', '/vendor');
    await page.routeWebSocket(/\/socket\.io\//, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((message) => {
        if (drop === 'request' && String(message).includes('"pickup"')) return;
        server.send(message);
      });
      server.onMessage((message) => {
        // An ack on /vendor: `43/vendor,<id>[...]`.
        if (drop === 'answer' && /^43\/vendor,\d+\[/.test(String(message)) && String(message).includes('"duplicate"')) return;
        ws.send(message);
      });
    });
    await page.reload();
    await signIn(page, 'vendorId', 'acme-widgets', 'demo-acme');
    const form = '#pickup-form';
    await page.selectOption(`${form} [name="distributorId"]`, 'north-hub');
    await page.fill(`${form} [name="customer"]`, 'Katherine Johnson');
    await page.fill(`${form} [name="address"]`, 'Hampton, VA');
    const lost = await page.inputValue(`${form} [name="orderId"]`);
    drop = 'request';
    await page.click(`${form} button[type="submit"]`);
    await page.waitForFunction(() => document.querySelector('#pickup-result').textContent.includes('safe to send again'), null, { timeout: 20_000 });
    const notRecorded = await page.textContent('#pickup-result');
    assert(notRecorded.includes(`${lost} was not recorded`), `the page says ${JSON.stringify(notRecorded)}`);
    assert((await page.inputValue(`${form} [name="orderId"]`)) === lost, 'the form did not keep the order id to send again');
    drop = 'answer';
    await page.click(`${form} button[type="submit"]`);
    await page.waitForFunction(() => document.querySelector('#pickup-result').textContent.includes('was recorded'), null, { timeout: 20_000 });
    await page.waitForSelector(`#orders .order[data-order-id="${lost}"][data-status="pending"]`);
    drop = null;
    await screenshot(page, 'vendor-timeout');
    await page.close();
  });

  let alice;
  let bob;
  const hello = 'hello from alice';
  const attack = '<img src=x onerror=alert(1)>';

  await check('two chat pages see each other\'s messages and the sender sees its own once', async () => {
    alice = await openPage('chat-alice', '/chat');
    bob = await openPage('chat-bob', '/chat');
    for (const [page, name] of [[alice, 'alice'], [bob, 'bob']]) {
      await page.fill('#signin-form [name="name"]', name);
      await page.click('#signin-form button[type="submit"]');
      await page.waitForSelector('#conn[data-state="connected"]');
      await page.waitForSelector('#console', { state: 'visible' });
    }
    await alice.waitForFunction(() => document.querySelector('#online').textContent.includes('bob'));
    await bob.waitForFunction(() => document.querySelector('#online').textContent.includes('alice'));
    await alice.fill('#message', hello);
    await alice.press('#message', 'Enter');
    await bob.waitForSelector(`#messages li.theirs .bubble:text-is("${hello}")`);
    await alice.waitForSelector(`#messages li.mine .bubble:text-is("${hello}")`);
    await sleep(QUIET_WINDOW_MS);
    const own = await alice.locator('#messages .bubble', { hasText: hello }).count();
    assert(own === 1, `alice sees her message ${own} times`);
    await bob.fill('#message', 'hi alice');
    await bob.press('#message', 'Enter');
    await alice.waitForSelector('#messages li.theirs .bubble:text-is("hi alice")');
  });

  await check('a chat message with markup shows as text and runs nothing', async () => {
    await bob.fill('#message', attack);
    await bob.press('#message', 'Enter');
    const bubble = alice.locator('#messages li.theirs .bubble').last();
    await alice.waitForFunction(
      (text) => [...document.querySelectorAll('#messages li.theirs .bubble')].some((b) => b.textContent === text),
      attack,
    );
    assert((await bubble.textContent()) === attack, 'the text changed on the way');
    for (const page of [alice, bob]) {
      assert((await page.locator('#messages img').count()) === 0, 'an <img> element was created');
    }
    await sleep(QUIET_WINDOW_MS);
    assert(!problems.some((p) => p.includes('dialog')), 'a dialog opened');
  });

  await check('chat rooms: joining shows notices and room messages reach members only', async () => {
    await alice.fill('#join-form [name="room"]', 'parcels');
    await alice.click('#join-form button');
    await alice.waitForSelector('#rooms li[data-room="parcels"]');
    await alice.selectOption('#target', 'parcels');
    await alice.fill('#message', 'only for the parcels room');
    await alice.press('#message', 'Enter');
    await alice.waitForSelector('#messages li.mine .bubble:text-is("only for the parcels room")');
    await sleep(QUIET_WINDOW_MS);
    assert((await bob.locator('#messages .bubble', { hasText: 'only for the parcels room' }).count()) === 0, 'bob got a room message without joining');
    await bob.fill('#join-form [name="room"]', 'parcels');
    await bob.click('#join-form button');
    await alice.waitForSelector('#messages li.system:text-is("bob joined #parcels")');
    await screenshot(alice, 'chat-alice');
    await screenshot(bob, 'chat-bob');
  });

  await check('a chat page that lost its connection shows what it missed; a reload shows recent history', async () => {
    // Dana's page keeps its WebSockets where the test can close them, and
    // while `__wsBlocked` is set every new one is closed as soon as it opens.
    const dana = await context.newPage();
    dana.setDefaultTimeout(STEP_TIMEOUT_MS);
    dana.on('pageerror', (err) => problems.push(`chat-dana: page error: ${err.message}`));
    await dana.addInitScript(() => {
      const Native = window.WebSocket;
      window.__openSockets = [];
      window.__wsBlocked = false;
      window.WebSocket = class extends Native {
        constructor(...args) {
          super(...args);
          window.__openSockets.push(this);
          if (window.__wsBlocked) this.addEventListener('open', () => this.close());
        }
      };
    });
    await dana.goto(`${hub.base}/chat`);
    // A name someone online already has is refused, with the hub's reason.
    await dana.fill('#signin-form [name="name"]', 'alice');
    await dana.click('#signin-form button[type="submit"]');
    await dana.waitForSelector('#signin-error:text-is("The hub refused: name_taken: someone called alice is already here")');
    await dana.fill('#signin-form [name="name"]', 'Dana Ñúñez');
    await dana.click('#signin-form button[type="submit"]');
    await dana.waitForSelector('#conn[data-state="connected"]');
    // Who is online comes from `users`: alice and bob were there first.
    await dana.waitForFunction(() => {
      const names = [...document.querySelectorAll('#online li > span:first-child')].map((n) => n.textContent);
      return ['alice', 'bob', 'Dana Ñúñez'].every((n) => names.includes(n)) && document.querySelector('#online-count').textContent === '3';
    });
    await alice.waitForFunction(() => document.querySelector('#online').textContent.includes('Dana Ñúñez'));
    await dana.fill('#join-form [name="room"]', 'parcels');
    await dana.click('#join-form button');
    // Joining shows what was said in the room before, marked as history.
    await dana.waitForSelector('#messages li.history .bubble:text-is("only for the parcels room")');

    // Dana drops off and cannot get back for a moment.
    await dana.evaluate(() => {
      window.__wsBlocked = true;
      for (const ws of window.__openSockets) ws.close();
    });
    await dana.waitForSelector('#conn[data-state="connecting"]');
    await alice.waitForFunction(() => !document.querySelector('#online').textContent.includes('Dana'));
    await alice.selectOption('#target', '');
    for (const text of ['while dana was away 1', 'while dana was away 2']) {
      await alice.fill('#message', text);
      await alice.press('#message', 'Enter');
      await alice.waitForSelector(`#messages li.mine .bubble:text-is("${text}")`);
    }
    await alice.selectOption('#target', 'parcels');
    await alice.fill('#message', 'parcels while dana was away');
    await alice.press('#message', 'Enter');
    await alice.waitForSelector('#messages li.mine .bubble:text-is("parcels while dana was away")');
    await dana.evaluate(() => {
      window.__wsBlocked = false;
    });
    await dana.waitForSelector('#conn[data-state="connected"]', { timeout: 30_000 });
    await dana.waitForSelector('#messages li.divider.missed');
    for (const text of ['while dana was away 1', 'while dana was away 2', 'parcels while dana was away']) {
      await dana.waitForSelector(`#messages li.missed .bubble:text-is("${text}")`);
    }
    await alice.waitForFunction(() => document.querySelector('#online').textContent.includes('Dana'));
    // Then live again, and nothing twice.
    await alice.selectOption('#target', '');
    await alice.fill('#message', 'welcome back');
    await alice.press('#message', 'Enter');
    await dana.waitForSelector('#messages li.theirs:not(.missed):not(.history) .bubble:text-is("welcome back")');
    await sleep(QUIET_WINDOW_MS);
    for (const text of ['while dana was away 1', 'parcels while dana was away', 'welcome back']) {
      const count = await dana.locator('#messages .bubble', { hasText: text }).count();
      assert(count === 1, `dana sees "${text}" ${count} times`);
    }
    await screenshot(dana, 'chat-dana-missed');

    // A reload: the page starts over, and shows the latest messages kept.
    await dana.reload();
    await dana.fill('#signin-form [name="name"]', 'Dana Ñúñez');
    await dana.click('#signin-form button[type="submit"]');
    await dana.waitForSelector('#conn[data-state="connected"]');
    await dana.waitForSelector('#messages li.divider.history');
    for (const text of [hello, 'while dana was away 2', 'welcome back']) {
      await dana.waitForSelector(`#messages li.history .bubble:text-is("${text}")`);
    }
    const roomOnly = await dana.locator('#messages .bubble', { hasText: 'parcels while dana was away' }).count();
    assert(roomOnly === 0, 'a room message showed in the namespace-wide history');
    // Markup in the history is text too.
    assert((await dana.locator('#messages img').count()) === 0, 'an <img> element was created');
    await screenshot(dana, 'chat-dana-reloaded');
    await dana.close();
    await alice.waitForFunction(() => !document.querySelector('#online').textContent.includes('Dana'));
  });

  let inspector;

  await check('the inspector shows the sockets and the events', async () => {
    inspector = await openPage('inspector', '/inspector');
    await inspector.click('#signin-form button[type="submit"]');
    await inspector.waitForSelector('#conn[data-state="connected"]');
    const tree = '#tree';
    await inspector.waitForSelector(`${tree} details[data-ns="/vendor"] .sock strong:text-is("vendor acme-widgets")`);
    await inspector.waitForSelector(`${tree} details[data-ns="/distributor"] .room[data-room="distributor:north-hub"] .sock`);
    await inspector.waitForSelector(`${tree} details[data-ns="/distributor"] .room[data-room="distributor:south-hub"] .sock`);
    await inspector.waitForSelector(`${tree} details[data-ns="/chat"] .room[data-room="chat:parcels"] .sock strong:text-is("chat bob")`);
    await inspector.waitForSelector(`${tree} details[data-ns="/inspector"] .sock strong:text-is("inspector")`);
    // New events flow in live: a pickup in, and out to the distributor's room.
    const id = await sendPickup(vendor, 'south-hub', 'Grace Hopper', 'Arlington, VA');
    await inspector.waitForSelector('#activity tr[data-event="pickup"][data-ns="/vendor"]');
    await inspector.waitForSelector('#activity tr[data-event="pickup"][data-ns="/distributor"]');
    const out = await inspector.textContent('#activity tr[data-event="pickup"][data-ns="/distributor"]');
    assert(out.includes('room distributor:south-hub') && out.includes(id), `outgoing row is ${out}`);
    await south.waitForSelector(`#pickups .order[data-order-id="${id}"]`);
    // A chat message shows in the feed with its text, as text.
    await bob.fill('#message', attack);
    await bob.press('#message', 'Enter');
    await inspector.waitForSelector('#activity tr[data-event="chat message"][data-ns="/chat"]');
    assert((await inspector.locator('#activity img').count()) === 0, 'the feed rendered markup');
    // Filtering by namespace hides the others.
    await inspector.selectOption('#filter-ns', '/chat');
    const namespaces = await inspector.$$eval('#activity tr[data-ns]', (rows) => [...new Set(rows.map((r) => r.dataset.ns))]);
    assert(namespaces.length === 1 && namespaces[0] === '/chat', `filter shows ${namespaces}`);
    await inspector.selectOption('#filter-ns', '');
    await screenshot(inspector, 'inspector');
  });

  await check('a CAPS lab client shows in the inspector, its refusals with their reason, and its store on the vendor console', async () => {
    const { io } = await import('socket.io-client');
    const lab = io(`${hub.base}/caps`, { transports: ['websocket'] });
    try {
      lab.emit('pickup', { store: 'Browser Blooms', orderId: 'lab-1', customer: 'Ada Lab', address: 'Lab Lane 1' });
      lab.emit('pickup', { store: 'Browser Blooms', customer: 'No Order', address: 'Nowhere' });
      await inspector.waitForSelector('#tree details[data-ns="/caps"] .sock strong:text-is("caps lab client")');
      await inspector.waitForSelector('#activity tr[data-event="pickup"][data-ns="/caps"]');
      const reason = await inspector.textContent('#activity tr[data-ns="/caps"] .outcome-bad .reason');
      assert(reason.includes('the pickup names no order'), `the refusal row says ${reason}`);
      await inspector.waitForSelector('#queues tr[data-owner="distributor:caps.drivers"]');
      const console = await openPage('lab-store', '/vendor');
      await console.click('.chip[data-id="caps.Browser_20Blooms"]');
      await console.click('#signin-form button[type="submit"]');
      await console.waitForSelector('#conn[data-state="connected"]');
      await console.waitForSelector('#orders .order[data-order-id="lab-1"][data-vendor-id="caps.Browser_20Blooms"]');
      await screenshot(console, 'vendor-lab-store');
      await console.close();
    } finally {
      lab.close();
    }
  });

  const ROOMS = '03-rooms-join-and-leave';
  let learn;

  await check('the learn index lists every scenario and links its stepper', async () => {
    const index = await openPage('learn-index', '/learn');
    const lessons = await index.$$eval('.lessons a.lesson', (links) => links.map((a) => a.getAttribute('href')));
    assert(lessons.length >= 10, `${lessons.length} scenarios listed`);
    assert(lessons.includes(`/learn/${ROOMS}`), `no link to ${ROOMS}: ${lessons}`);
    assert((await index.locator('nav a[href="/learn"][aria-current="page"]').count()) === 1, 'Learn is not the current nav link');
    const text = await index.textContent('main');
    assert(text.includes('scenario run N --step'), 'no CLI equivalent');
    await screenshot(index, 'learn-index');
    await index.click(`.lessons a[href="/learn/${ROOMS}"]`);
    await index.waitForSelector(`#stepper[data-slug="${ROOMS}"]`);
    await index.close();
  });

  await check(`the stepper plays ${ROOMS} step by step and every check passes`, async () => {
    learn = await openPage('learn-step', `/learn/${ROOMS}`);
    // Per step: how many checks, and what the actor panes must show ([] = "nothing").
    const steps = [
      { checks: 0, panes: {} },
      { checks: 1, panes: {}, ack: true },
      { checks: 2, panes: { alice: ['user joined'], carol: [] } },
      { checks: 3, panes: { alice: ['chat message'], bob: [], carol: [] } },
      { checks: 2, panes: { bob: ['user left'] }, ack: true },
      { checks: 2, panes: { alice: [], bob: [], carol: [] } },
    ];
    const total = Number(await learn.getAttribute('#stepper', 'data-steps'));
    assert(total === steps.length, `the page lists ${total} steps`);
    assert((await learn.locator('script[src*="socket.io"]').count()) === 0, 'the stepper loads the Socket.IO client');
    for (let n = 1; n <= total; n += 1) {
      const card = `#step-${n}`;
      const want = steps[n - 1];
      assert(await learn.isVisible(card), `step ${n} is not shown`);
      const prediction = `my guess for step ${n} <b>bold</b>`;
      const asks = (await learn.locator(`${card} textarea.prediction`).count()) === 1;
      if (asks) await learn.fill(`${card} textarea.prediction`, prediction);
      await learn.click(`${card} button.run`);
      await learn.waitForSelector(`${card} .verdict.pass`);
      const checks = await learn.$$eval(`${card} .check`, (items) => items.map((i) => [i.dataset.passed, i.textContent]));
      assert(checks.length === want.checks, `step ${n} shows ${checks.length} checks`);
      const failed = checks.filter(([passed]) => passed !== 'true');
      assert(failed.length === 0, `step ${n} failed checks: ${failed.map(([, t]) => t).join('; ')}`);
      for (const actor of ['alice', 'bob', 'carol']) {
        assert((await learn.locator(`${card} .actor[data-actor="${actor}"][data-connected="true"]`).count()) === 1, `step ${n}: no pane for ${actor}, connected`);
      }
      for (const [actor, events] of Object.entries(want.panes)) {
        const pane = `${card} .actor[data-actor="${actor}"]`;
        const got = await learn.$$eval(`${pane} .received li`, (items) => items.map((i) => i.dataset.event));
        assert(JSON.stringify(got) === JSON.stringify(events), `step ${n}: ${actor} shows ${JSON.stringify(got)}, not ${JSON.stringify(events)}`);
        if (events.length === 0) assert((await learn.textContent(`${pane} .nothing`)) === 'nothing', `step ${n}: ${actor} does not say nothing`);
      }
      if (want.ack) assert(await learn.isVisible(`${card} .answer[data-kind="ack"]`), `step ${n} shows no ack`);
      if (asks) {
        const kept = await learn.inputValue(`${card} textarea.prediction`);
        assert(kept === prediction, `step ${n} lost the prediction: ${kept}`);
      }
      const activity = await learn.$$eval(`${card} .activity tbody tr`, (rows) => rows.map((r) => r.dataset.event));
      assert(activity.length > 0, `step ${n} shows no hub activity`);
      if (n === 3) {
        assert(activity.includes('join') && activity.includes('user joined'), `step 3 activity is ${activity}`);
        await screenshot(learn, 'learn-step');
      }
      assert((await learn.locator(`#step-list li[data-step="${n}"][data-result="pass"]`).count()) === 1, `step ${n} is not marked passed`);
      await learn.click(`${card} .after button`);
    }
    assert((await learn.locator('main b').count()) === 0, 'a prediction became markup');
    await learn.waitForSelector('#summary', { state: 'visible' });
    const summary = await learn.textContent('#summary-line');
    assert(summary.includes(`All ${total} steps`), `the summary says ${summary}`);
    assert((await learn.locator('#summary-steps li.pass').count()) === total, 'the summary does not list every step as passed');
    assert((await learn.textContent('#hub-state')).includes('hub stopped'), 'the hub state does not say the hub stopped');
    await screenshot(learn, 'learn-summary');
  });

  await check('start over opens a fresh session on a fresh hub', async () => {
    await learn.click('#start-over');
    await learn.waitForSelector('#step-1', { state: 'visible' });
    assert(await learn.isHidden('#step-1 .report'), 'the old report is still shown');
    assert((await learn.locator('#step-list li[data-result="pass"]').count()) === 0, 'steps are still marked passed');
    await learn.click('#step-1 button.run');
    await learn.waitForSelector('#step-1 .verdict.pass');
    assert((await learn.textContent('#hub-state')).includes('steps left'), 'no fresh hub');
  });

  const MIDDLEWARE = '05-namespace-middleware';

  await check(`the stepper shows ${MIDDLEWARE}'s refused connections, keeps progress across a visit elsewhere, and asks before leaving`, async () => {
    const page = await openPage('learn-refused', `/learn/${MIDDLEWARE}`);
    // Leaving mid-lesson asks (beforeunload); that dialog is expected here.
    const asked = [];
    page.removeAllListeners('dialog');
    page.on('dialog', async (dialog) => {
      asked.push(dialog.type());
      await dialog.accept();
    });
    // Actor names and namespaces are never cut mid-word.
    const cut = await page.$$eval('.actor-list code', (codes) => codes.filter((c) => c.getClientRects().length > 1).map((c) => c.textContent));
    assert(cut.length === 0, `namespaces broken across lines: ${cut}`);
    await page.fill('#step-1 textarea.prediction', 'refused: no distributorId');
    await page.click('#step-1 button.run');
    await page.waitForSelector('#step-1 .verdict.pass');
    assert((await page.textContent('#step-1 .verdict')) === 'checks passed', 'the verdict grades the prediction');
    assert(await page.isVisible('#step-1 .answer[data-kind="connect_error"]'), 'no connect_error shown');
    const rows = await page.$$eval('#step-1 .activity tbody tr', (trs) => trs.map((r) => [r.dataset.event, r.textContent]));
    assert(rows.length === 1 && rows[0][0] === 'connect' && rows[0][1].includes('bad_auth') && rows[0][1].includes('distributorId is required'), `step 1 activity: ${JSON.stringify(rows)}`);
    await page.click('#step-1 .after button');
    await page.click('#step-2 button.run');
    await page.waitForSelector('#step-2 .verdict.pass');

    // Away to the index and Back: the lesson is where it was.
    await page.goto(`${hub.base}/learn`);
    assert(asked.includes('beforeunload'), `leaving mid-lesson did not ask: ${asked}`);
    await page.goBack();
    await page.waitForSelector('#resumed', { state: 'visible' });
    await page.waitForSelector('#step-3', { state: 'visible' });
    assert((await page.locator('#step-list li[data-result="pass"]').count()) === 2, 'the two steps run are not kept');
    assert((await page.inputValue('#step-1 textarea.prediction')) === 'refused: no distributorId', 'the prediction is not kept');
    await page.click('#step-3 button.run');
    await page.waitForSelector('#step-3 .verdict.pass');
    assert((await page.locator('#step-3 .check').count()) === 1, 'step 3 checks nothing');

    // On a phone, the refusal's text does not cover its label.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('#step-3 .after button');
    await page.click('#step-4 button.run');
    await page.waitForSelector('#step-4 .verdict.pass');
    const label = await page.locator('#step-4 .answer[data-kind="connect_error"] .label').boundingBox();
    const text = await page.locator('#step-4 .answer[data-kind="connect_error"] code').boundingBox();
    const overlap = label.x < text.x + text.width && text.x < label.x + label.width && label.y < text.y + text.height && text.y < label.y + label.height;
    assert(!overlap, `the connect_error text covers its label: ${JSON.stringify({ label, text })}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 0, `the stepper is ${overflow}px wider than the screen`);
    await screenshot(page, 'learn-refused-phone');
    await page.click('#step-4 .after button');
    await page.waitForSelector('#summary', { state: 'visible' });
    const summary = await page.textContent('#summary-steps');
    assert(summary.includes('You predicted: refused: no distributorId'), `the summary does not show the prediction: ${summary}`);
    assert(summary.includes('What happened:'), 'the summary does not show the outcome');
    await page.close();
  });

  await check('the pages read well on a phone-sized screen', async () => {
    await vendor.setViewportSize({ width: 390, height: 844 });
    const overflow = await vendor.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 0, `the vendor page is ${overflow}px wider than the screen`);
    await screenshot(vendor, 'vendor-phone');
    await north.setViewportSize({ width: 390, height: 844 });
    const northOverflow = await north.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(northOverflow <= 0, `the distributor page is ${northOverflow}px wider than the screen`);
    await screenshot(north, 'distributor-phone');
    await alice.setViewportSize({ width: 390, height: 844 });
    const chatOverflow = await alice.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(chatOverflow <= 0, `the chat page is ${chatOverflow}px wider than the screen`);
    await screenshot(alice, 'chat-phone');
    await inspector.setViewportSize({ width: 390, height: 844 });
    const inspectorOverflow = await inspector.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(inspectorOverflow <= 0, `the inspector is ${inspectorOverflow}px wider than the screen`);
    await screenshot(inspector, 'inspector-phone');
    await learn.setViewportSize({ width: 390, height: 844 });
    await learn.click('#step-1 .after button');
    await learn.click('#step-2 button.run');
    await learn.waitForSelector('#step-2 .verdict.pass');
    const learnOverflow = await learn.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(learnOverflow <= 0, `the stepper is ${learnOverflow}px wider than the screen`);
    await screenshot(learn, 'learn-phone');
  });

  await check('without --client-js the pages use the pinned CDN build and say when it cannot load', async () => {
    cdnHub = await startHub('cdn', []);
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    // Deterministic with or without Internet access: the CDN is unreachable here.
    await page.route('https://cdn.socket.io/**', (route) => route.abort());
    await page.goto(`${cdnHub.base}/chat`);
    const script = page.locator('script[src^="https://cdn.socket.io/"]');
    assert((await script.getAttribute('src')) === 'https://cdn.socket.io/4.8.1/socket.io.min.js', 'not the pinned CDN build');
    assert(/^sha384-[A-Za-z0-9+/]{64}$/.test(await script.getAttribute('integrity')), 'no integrity hash');
    assert((await script.getAttribute('crossorigin')) === 'anonymous', 'no crossorigin attribute');
    const note = await page.textContent('main > p.error');
    assert(note.includes('did not load') && note.includes('--client-js'), `the page says ${note}`);
    assert(await page.isDisabled('#signin-form button'), 'the sign-in button still works without a client');
    await page.close();
  });

  await check('no page logged a console error or opened a dialog', async () => {
    const notFound = await openPage('not-found', '/no-such-page');
    await screenshot(notFound, 'not-found');
    // The 404s themselves are expected (the missing page; the order lookup
    // of a pickup that was not recorded); Chromium logs them as failed loads.
    const expected404 = (p) => (p.startsWith('not-found:') || p.startsWith('vendor-timeout:')) && p.includes('404');
    const unexpected = problems.filter((p) => !expected404(p));
    assert(unexpected.length === 0, unexpected.join(' | '));
  });
}

async function shutdown() {
  if (context) await context.close().catch(() => {});
  for (const running of [hub, cdnHub]) {
    if (!running) continue;
    running.child.kill('SIGTERM');
    await new Promise((r) => {
      const timer = setTimeout(() => {
        running.child.kill('SIGKILL');
        r();
      }, 5000);
      running.child.once('exit', () => {
        clearTimeout(timer);
        r();
      });
    });
  }
  rmSync(dataDir, { recursive: true, force: true });
}

try {
  await main();
} catch (e) {
  results.push(false);
  console.log(`FAIL setup: ${e && e.message ? e.message : e}`);
} finally {
  await shutdown();
}
const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`screenshots in ${artifacts}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
