'use strict';
// CAPS Phase 2 as one instructor's review code spells it: events in
// capitals, `DELIVERY` for the last step, the order id under `id`, no
// room at all (the hub's broadcast used to reach everyone).

const { io } = require('socket.io-client');

const SERVER_URL = process.env.SERVER_URL || 'http://localhost:3000';
const STORE = process.env.STORE || '1-800-flowers';
const ORDERS = Number(process.env.ORDERS || 1);

const socket = io(`${SERVER_URL}/caps`);
let delivered = 0;

function generateOrder(n) {
  return {
    store: STORE,
    id: `${process.pid}-${n}`,
    customer: `Shopper ${n}`,
    address: '123 Main St, Tacoma, WA',
  };
}

socket.on('DELIVERY', (payload) => {
  console.log('Thanks for delivering the package to', payload.customer);
  delivered += 1;
  if (delivered === ORDERS) process.exit(0);
});

for (let n = 1; n <= ORDERS; n += 1) {
  console.log('VENDOR: order ready for pickup.');
  socket.emit('PICKUP', generateOrder(n));
}
