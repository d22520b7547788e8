#!/usr/bin/env node
// The official Socket.IO Admin UI against the hub, in headless Chromium.
//
// Usage: node tests/browser/admin-ui.test.mjs /path/to/parcel-hub [artifacts-dir]
//
// Serves the built UI from the npm package (`@socket.io/admin-ui`, its
// `ui/dist` folder) from a small static server on 127.0.0.1, starts the
// hub with `--cors-origin` set to that server's origin (the UI is another
// origin and connects with credentials, long-polling first), signs in as
// `admin` with the admin token, and checks that the UI shows the hub as a
// server and lists a vendor's socket. Nothing is fetched from the
// Internet: the UI's web fonts and icon stylesheet are answered empty.
// Prints one PASS/FAIL line per check, then `N passed, M failed`.

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, mkdirSync, rmSync, existsSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname, extname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { io } from 'socket.io-client';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const UI_DIST = join(HERE, 'node_modules/@socket.io/admin-ui/ui/dist');
const STEP_TIMEOUT_MS = 15_000;

const binary = process.argv[2];
const artifacts = resolve(process.argv[3] || join(HERE, 'artifacts'));
if (!binary || !existsSync(binary)) {
  console.error('usage: node admin-ui.test.mjs /path/to/parcel-hub [artifacts-dir]');
  process.exit(2);
}
if (!existsSync(join(UI_DIST, 'index.html'))) {
  console.error(`missing ${UI_DIST}: run npm ci in ${HERE}`);
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const results = [];
const dataDir = mkdtempSync(join(tmpdir(), 'parcel-hub-admin-ui-'));
let hub = null;
let browser = null;
let staticServer = null;
const clients = [];

async function check(name, body) {
  try {
    await body();
    results.push(true);
    console.log(`PASS ${name}`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL ${name}: ${e && e.message ? e.message.split('\n')[0] : e}`);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

/// The UI's files, as any static web server would serve them.
function serveUi() {
  return new Promise((resolveStart) => {
    const server = createServer((req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^\/+/, '');
      const file = join(UI_DIST, path || 'index.html');
      if (!file.startsWith(UI_DIST) || !existsSync(file) || !statSync(file).isFile()) {
        res.writeHead(404);
        res.end('not found');
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
      res.end(readFileSync(file));
    });
    server.listen(0, '127.0.0.1', () => resolveStart(server));
  });
}

function startHub(origin) {
  return new Promise((resolveStart, rejectStart) => {
    const child = spawn(
      binary,
      ['--listen', '127.0.0.1:0', '--db', join(dataDir, 'hub.db'), '--cors-origin', origin],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    const timer = setTimeout(() => rejectStart(new Error('the hub did not start')), 20_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = line.match(/^listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolveStart({ child, url: m[1] });
      }
    });
    child.stderr.resume();
    child.on('exit', (code) => rejectStart(new Error(`the hub exited with ${code}`)));
  });
}

function namespaceSelect(page) {
  return page.locator('.v-select', { hasText: 'Select namespace' }).locator('.v-select__slot');
}

function connected(socket) {
  return new Promise((resolveConnect, rejectConnect) => {
    socket.once('connect', () => resolveConnect(socket));
    socket.once('connect_error', (e) => rejectConnect(e));
  });
}

async function main() {
  staticServer = await serveUi();
  const uiOrigin = `http://127.0.0.1:${staticServer.address().port}`;
  hub = await startHub(uiOrigin);

  // A vendor, connected before the UI, so it is in `all_sockets`.
  const shop = await connected(
    io(`${hub.url}/vendor`, { auth: { vendorId: 'acme-widgets', token: 'demo-acme' }, transports: ['websocket'] }),
  );
  clients.push(shop);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Only the two local servers are reached; fonts and icons come back empty.
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1') return route.continue();
    return route.fulfill({ status: 200, contentType: 'text/css', body: '' });
  });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));

  await check('the Admin UI signs in to the hub as admin with the admin token', async () => {
    await page.goto(`${uiOrigin}/`);
    await page.getByLabel('Server URL').fill(hub.url, { timeout: STEP_TIMEOUT_MS });
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('demo-admin');
    await page.getByRole('button', { name: /connect/i }).click();
    await page.getByText('Connected', { exact: false }).first().waitFor({ timeout: STEP_TIMEOUT_MS });
    await page.screenshot({ path: join(artifacts, 'admin-ui-dashboard.png'), fullPage: true });
  });

  await check('the servers page lists the hub under its id', async () => {
    await page.goto(`${uiOrigin}/#/servers`);
    const health = await fetch(`${hub.url}/api/health`).then((r) => r.json());
    // Its id comes with the first server_stats (every 2 s).
    await page.getByText(health.hub).first().waitFor({ timeout: STEP_TIMEOUT_MS });
    await page.screenshot({ path: join(artifacts, 'admin-ui-servers.png'), fullPage: true });
  });

  await check("the sockets page shows the vendor's socket", async () => {
    await page.goto(`${uiOrigin}/#/sockets`);
    // The namespace selector: pick /vendor.
    await namespaceSelect(page).click({ timeout: STEP_TIMEOUT_MS });
    await page.getByRole('option', { name: '/vendor' }).click({ timeout: STEP_TIMEOUT_MS });
    await page.getByText(shop.id).first().waitFor({ timeout: STEP_TIMEOUT_MS });
    await page.screenshot({ path: join(artifacts, 'admin-ui-sockets.png'), fullPage: true });
  });

  await check('a socket that connects later shows up live', async () => {
    const dana = await connected(io(`${hub.url}/chat`, { auth: { name: 'dana' }, transports: ['websocket'] }));
    clients.push(dana);
    await namespaceSelect(page).click({ timeout: STEP_TIMEOUT_MS });
    await page.getByRole('option', { name: '/chat' }).click({ timeout: STEP_TIMEOUT_MS });
    await page.getByText(dana.id).first().waitFor({ timeout: STEP_TIMEOUT_MS });
  });

  await check('the UI raised no page error', async () => {
    assert(pageErrors.length === 0, pageErrors.join('; '));
  });
}

try {
  await main();
} catch (e) {
  results.push(false);
  console.log(`FAIL setting up: ${e && e.message ? e.message : e}`);
} finally {
  for (const c of clients) c.disconnect();
  if (browser) await browser.close();
  if (staticServer) staticServer.close();
  if (hub) hub.child.kill();
  rmSync(dataDir, { recursive: true, force: true });
}
const passed = results.filter(Boolean).length;
console.log(`${passed} passed, ${results.length - passed} failed`);
process.exit(passed === results.length ? 0 : 1);
