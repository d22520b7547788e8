'use strict';
// CAPS Phase 2, vendor, as the lab text asks: connect to the `caps`
// namespace, join a room named after the store, send a `pickup` with the
// store, an order id, the customer and the address, and thank the driver
// on `delivered`. Leaves when every order it sent was delivered.

const { io } = require('socket.io-client');

const SERVER_URL = process.env.SERVER_URL || 'http://localhost:3000';
const STORE = process.env.STORE || '1-206-flowers';
const ORDERS = Number(process.env.ORDERS || 1);

const socket = io(`${SERVER_URL}/caps`);
const waiting = new Set();
const slug = STORE.replace(/[^A-Za-z0-9._-]/g, '-');

socket.emit('join', STORE);

for (let i = 1; i <= ORDERS; i += 1) {
  const payload = {
    store: STORE,
    orderId: `${slug}-${process.pid}-${i}`,
    customer: `Customer ${i} of ${STORE}`,
    address: 'Seattle, WA',
  };
  waiting.add(payload.orderId);
  socket.emit('pickup', payload);
  console.log(`VENDOR: pickup ${payload.orderId}`);
}

socket.on('in-transit', (payload) => {
  console.log(`VENDOR: ${payload.orderId} is on its way`);
});

socket.on('delivered', (payload) => {
  console.log(`VENDOR: Thank you for delivering ${payload.orderId}, ${payload.customer}`);
  waiting.delete(payload.orderId);
  if (waiting.size === 0) process.exit(0);
});
