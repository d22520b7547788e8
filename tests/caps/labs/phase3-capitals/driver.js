'use strict';
// The capitalised Phase 3 driver: `GET-ALL { queueId: 'driver' }` as soon
// as it starts, then for each `PICKUP`: `IN-TRANSIT`, `RECEIVED { queueId,
// messageId }`, and `DELIVERED` with the payload and its event renamed.

const { io } = require('socket.io-client');

const SERVER_URL = process.env.SERVER_URL || 'http://localhost:3000';
const socket = io(`${SERVER_URL}/caps`);

socket.on('connect', () => console.log('DRIVER: ready'));

socket.emit('GET-ALL', { queueId: 'driver' });

socket.on('PICKUP', (payload) => {
  setTimeout(() => {
    console.log('DRIVER: picked up package.', payload.order.id);
    socket.emit('IN-TRANSIT', payload);
    socket.emit('RECEIVED', { queueId: 'driver', messageId: payload.messageId });
  }, 50);
  setTimeout(() => {
    console.log('DRIVER: package has been delivered', payload.order.id);
    socket.emit('DELIVERED', { ...payload, event: 'DELIVERED' });
  }, 100);
});
