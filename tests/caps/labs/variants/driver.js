'use strict';
// A driver in camelCase: `inTransit`, then `delivered`, with the payload.

const { io } = require('socket.io-client');

const SERVER_URL = process.env.SERVER_URL || 'http://localhost:3000';
const socket = io(`${SERVER_URL}/caps`);

socket.on('connect', () => console.log('DRIVER: ready'));

socket.on('pickup', (payload) => {
  console.log(`DRIVER: picked up ${payload.orderID}`);
  socket.emit('inTransit', payload);
  setTimeout(() => {
    socket.emit('delivered', payload);
    console.log(`DRIVER: delivered ${payload.orderID}`);
  }, 50);
});
