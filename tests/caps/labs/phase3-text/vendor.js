'use strict';
// CAPS Phase 3, a store's vendor client, as the lab text asks: join the
// store's room, catch up with `getAll { clientId, event }`, send pickups
// wrapped as `{ event, messageId, clientId, order }` (the message id is the
// order id), log a confirmation on `delivered` and tell the hub with
// `received { clientId, event, messageId }`.
//
// MODE=send sends the pickups and leaves at once (a store that closes for
// the night); MODE=catch-up only catches up; the default does both and
// leaves once every order it knows of was delivered.

const { io } = require('socket.io-client');

const SERVER_URL = process.env.SERVER_URL || 'http://localhost:3000';
const STORE = process.env.STORE || 'acme-widgets';
const ORDERS = Number(process.env.ORDERS || 1);
const EXPECT = Number(process.env.EXPECT || ORDERS);
const MODE = process.env.MODE || 'both';

const socket = io(`${SERVER_URL}/caps`);
let thanked = 0;

socket.on('connect', () => {
  socket.emit('join', STORE);
  if (MODE !== 'send') socket.emit('getAll', { clientId: STORE, event: 'delivered' });
  if (MODE === 'catch-up') return;
  for (let i = 1; i <= ORDERS; i += 1) {
    const order = {
      store: STORE,
      orderId: `${STORE}-${process.pid}-${i}`,
      customer: `Patron ${i}`,
      address: 'Portland, OR',
    };
    socket.emit('pickup', { event: 'pickup', messageId: order.orderId, clientId: STORE, order });
    console.log(`${STORE}: pickup ${order.orderId}`);
  }
  if (MODE === 'send') setTimeout(() => process.exit(0), 300);
});

socket.on('delivered', (payload) => {
  console.log(`${STORE}: Thank you for your order, ${payload.order.customer} (${payload.order.orderId})`);
  socket.emit('received', { clientId: STORE, event: 'delivered', messageId: payload.order.orderId });
  thanked += 1;
  if (MODE !== 'send' && thanked === EXPECT) setTimeout(() => process.exit(0), 200);
});
