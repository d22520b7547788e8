'use strict';
// CAPS Phase 2, driver, as the lab text asks: on every `pickup`, log it,
// then emit `in-transit` and `delivered` with the payload it received
// (back to back, as some learners do: the second must not overtake the first).

const { io } = require('socket.io-client');

const SERVER_URL = process.env.SERVER_URL || 'http://localhost:3000';
const socket = io(`${SERVER_URL}/caps`);

socket.on('connect', () => console.log('DRIVER: ready'));

socket.on('pickup', (payload) => {
  console.log(`DRIVER: picked up ${payload.orderId}`);
  socket.emit('in-transit', payload);
  socket.emit('delivered', payload);
  console.log(`DRIVER: delivered ${payload.orderId}`);
});
