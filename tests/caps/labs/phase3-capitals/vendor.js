'use strict';
// CAPS Phase 3 as one instructor's review code spells it: `JOIN` the
// store's room, `GET-ALL { queueId }`, `PICKUP` wrapped with
// `{ event, messageId, queueId, order }` (the order id under `id`), thank
// on `DELIVERED` with `payload.order.customer` and confirm by sending the
// whole payload back as `RECEIVED`.

const { io } = require('socket.io-client');

const SERVER_URL = process.env.SERVER_URL || 'http://localhost:3000';
const STORE = process.env.STORE || '1-800-flowers';
const ORDERS = Number(process.env.ORDERS || 1);

const socket = io(`${SERVER_URL}/caps`);
let thanked = 0;

socket.emit('JOIN', STORE);
socket.emit('GET-ALL', { queueId: STORE });

socket.on('DELIVERED', (payload) => {
  console.log('Thanks for delivering the package to', payload.order.customer);
  socket.emit('RECEIVED', payload);
  thanked += 1;
  if (thanked === ORDERS) setTimeout(() => process.exit(0), 200);
});

for (let n = 1; n <= ORDERS; n += 1) {
  const order = { store: STORE, id: `${process.pid}-${n}`, customer: `Buyer ${n}`, address: 'Olympia, WA' };
  socket.emit('PICKUP', { event: 'PICKUP', messageId: order.id, queueId: STORE, order });
  console.log(`VENDOR: order ${order.id} ready for pickup.`);
}
