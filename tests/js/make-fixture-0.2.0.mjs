// Writes tests/hub/fixtures/sqlite-0.2.0.db with a 0.2.0 binary (schema
// version 1): run `node make-fixture-0.2.0.mjs <parcel-hub 0.2.0> <out.db>`.
// The traffic: three pickups, one moved to in-transit, one confirmed, and
// chat messages (which 0.2.0 does not store). tests/hub/upgrade.rs checks
// that today's store opens the file with nothing lost.
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { io } from 'socket.io-client';

const [binary, out] = process.argv.slice(2);
if (!binary || !out) {
  console.error('usage: node make-fixture-0.2.0.mjs <parcel-hub binary> <out.db>');
  process.exit(2);
}
for (const file of [out, `${out}-wal`, `${out}-shm`]) if (existsSync(file)) rmSync(file);

const hub = spawn(binary, ['--listen', '127.0.0.1:0', '--db', out], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise((resolve, reject) => {
  createInterface({ input: hub.stdout }).on('line', (line) => {
    if (line.startsWith('listening on ')) resolve(line.slice('listening on '.length).trim());
  });
  hub.on('exit', () => reject(new Error('the hub exited before listening')));
});

const connect = (ns, auth) =>
  new Promise((resolve, reject) => {
    const socket = io(`${url}${ns}`, { auth, transports: ['websocket'] });
    socket.on('connect', () => resolve(socket));
    socket.on('connect_error', reject);
  });
const ack = (socket, event, payload) => socket.timeout(5000).emitWithAck(event, payload);

const acme = await connect('/vendor', { vendorId: 'acme-widgets', token: 'demo-acme' });
const flowers = await connect('/vendor', { vendorId: '1-800-flowers', token: 'demo-flowers' });
const north = await connect('/distributor', { distributorId: 'north-hub', token: 'demo-north' });
const pickup = (orderId, distributorId, customer) => ({ orderId, distributorId, customer, address: '1 Rue de l\'Église, Montréal' });
const first = await ack(acme, 'pickup', pickup('o-2001', 'north-hub', 'José Ñúñez'));
await ack(acme, 'pickup', pickup('o-2002', 'south-hub', 'Jamie Doe'));
await ack(flowers, 'pickup', pickup('f-1', 'north-hub', 'Ana'));
await ack(north, 'in-transit', { vendorId: 'acme-widgets', orderId: 'o-2001' });
await ack(north, 'received', { messageId: first.messageId });
const alice = await connect('/chat', { name: 'alice' });
await ack(alice, 'chat message', { text: 'said to 0.2.0, which kept nothing' });
for (const socket of [acme, flowers, north, alice]) socket.disconnect();

hub.kill('SIGTERM');
await new Promise((resolve) => hub.on('exit', resolve));
console.log(`wrote ${out}`);
