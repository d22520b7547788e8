'use strict';
// The capitalised Phase 2 driver: waits a little between the steps.

const { io } = require('socket.io-client');

const SERVER_URL = process.env.SERVER_URL || 'http://localhost:3000';
const socket = io(`${SERVER_URL}/caps`);

socket.on('connect', () => console.log('DRIVER: ready'));

socket.on('PICKUP', (payload) => {
  setTimeout(() => {
    console.log('DRIVER: picked up package.', payload.id);
    socket.emit('IN-TRANSIT', payload);
  }, 50);
  setTimeout(() => {
    console.log('DRIVER: package has been delivered', payload.id);
    socket.emit('DELIVERY', payload);
  }, 100);
});
