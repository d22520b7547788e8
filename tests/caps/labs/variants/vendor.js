'use strict';
// A vendor that spells things its own way, as learners do: a store name
// with a space, `join-room { storeName }`, the customer under `name`, the
// order id under `orderID`, `get-orders` to catch up, and the misspelled
// `recieved` (with the whole message) to confirm.
//
// MODE=send sends and leaves (listening to nothing); MODE=catch-up only
// catches up and leaves once EXPECT deliveries were confirmed.

const { io } = require('socket.io-client');

const SERVER_URL = process.env.SERVER_URL || 'http://localhost:3000';
const STORE = process.env.STORE || 'ACME Widgets';
const ORDERS = Number(process.env.ORDERS || 1);
const EXPECT = Number(process.env.EXPECT || ORDERS);
const MODE = process.env.MODE || 'both';

const socket = io(`${SERVER_URL}/caps`);
let thanked = 0;

socket.emit('join-room', { storeName: STORE });
if (MODE !== 'send') socket.emit('get-orders', { storeName: STORE });

if (MODE !== 'catch-up') {
  for (let i = 1; i <= ORDERS; i += 1) {
    socket.emit('pickup', { storeName: STORE, orderID: `v-${process.pid}-${i}`, name: `Guest ${i}`, address: 'Spokane, WA' });
    console.log(`${STORE}: pickup v-${process.pid}-${i}`);
  }
}
if (MODE === 'send') setTimeout(() => process.exit(0), 300);

// A store that only sends (and closes for the night) listens to nothing.
if (MODE !== 'send') {
  socket.on('inTransit', (payload) => {
    console.log(`${STORE}: ${payload.orderID} in transit`);
    socket.emit('recieved', payload);
  });

  socket.on('delivered', (payload) => {
    console.log(`${STORE}: Thank you, ${payload.name} (${payload.orderID})`);
    socket.emit('recieved', payload);
    thanked += 1;
    if (thanked === EXPECT) setTimeout(() => process.exit(0), 200);
  });
}
