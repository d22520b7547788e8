'use strict';
// CAPS Phase 3 driver, as the lab text asks: catch up on the pickups it
// missed with `getAll`, then for each pickup emit `in-transit` and
// `delivered` with the payload, and confirm it with `received`.

const { io } = require('socket.io-client');

const SERVER_URL = process.env.SERVER_URL || 'http://localhost:3000';
const socket = io(`${SERVER_URL}/caps`);

socket.on('connect', () => {
  console.log('DRIVER: ready');
  socket.emit('getAll', { clientId: 'driver', event: 'pickup' });
});

socket.on('pickup', (payload) => {
  console.log(`DRIVER: picked up ${payload.order.orderId} for ${payload.clientId}`);
  socket.emit('in-transit', payload);
  setTimeout(() => {
    socket.emit('delivered', payload);
    socket.emit('received', { clientId: 'driver', event: 'pickup', messageId: payload.order.orderId });
    console.log(`DRIVER: delivered ${payload.order.orderId}`);
  }, 50);
});
