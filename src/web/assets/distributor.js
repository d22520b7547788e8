'use strict';
// Distributor console: sign in on /distributor, take pickups, move orders, go offline.
(() => {
  const { el, request, newer, orderCard, demoChips, signIn } = window.ParcelHub;
  const $ = (id) => document.getElementById(id);
  const signinForm = $('signin-form');
  const offline = $('offline');
  let socket = null;
  // Called when the hub refuses `s`: lets go of it if it is still this page's socket.
  const forget = (s) => {
    if (socket !== s) return false;
    socket = null;
    return true;
  };
  let show = null;
  let pickups = new Map(); // `${vendorId}/${orderId}` -> order
  const errors = new Map(); // same key -> last refusal shown on the card

  demoChips(signinForm, 'distributorId');

  signinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    connect(signinForm.elements.distributorId.value.trim(), signinForm.elements.token.value);
  });

  $('signout').addEventListener('click', () => {
    if (socket) socket.disconnect();
    socket = null;
    pickups = new Map();
    errors.clear();
    offline.checked = false;
    $('offline-note').hidden = true;
    render();
    $('console').hidden = true;
    $('signin').hidden = false;
  });

  offline.addEventListener('change', () => {
    if (!socket) return;
    $('offline-note').hidden = !offline.checked;
    if (offline.checked) {
      socket.disconnect();
      show('idle', 'offline');
    } else {
      socket.connect();
    }
    render();
  });

  function connect(distributorId, token) {
    ({ socket, show } = signIn(socket, '/distributor', { distributorId, token }, forget));
    const current = socket;
    socket.on('connect', () => {
      $('who').textContent = distributorId;
      $('signin').hidden = true;
      $('console').hidden = false;
      render();
      catchUp(current);
    });
    socket.on('disconnect', () => render());
    socket.on('pickup', (envelope) => take(current, envelope));
  }

  // Every (re)connect reads the pickups that queued up while offline.
  async function catchUp(from) {
    const answer = await request(from, 'getAll', {});
    if (!answer.ok) return;
    for (const envelope of answer.messages) take(from, envelope);
  }

  function take(from, envelope) {
    if (!envelope || !envelope.order) return;
    upsert(envelope.order);
    request(from, 'received', { messageId: envelope.messageId });
  }

  function key(order) {
    return `${order.vendorId}/${order.orderId}`;
  }

  function upsert(order) {
    pickups.set(key(order), newer(pickups.get(key(order)), order));
    render();
  }

  async function move(order, event) {
    if (!socket) return;
    const answer = await request(socket, event, { vendorId: order.vendorId, orderId: order.orderId });
    if (answer.ok) {
      errors.delete(key(order));
      upsert(answer.order);
    } else {
      errors.set(key(order), `${answer.error.code}: ${answer.error.message}`);
      render();
    }
  }

  function render() {
    const online = Boolean(socket && socket.connected);
    const list = [...pickups.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
    $('pickups').replaceChildren(
      ...list.map((order) => {
        const toTransit = el('button', { className: 'small', text: 'Mark in transit', attrs: { 'data-action': 'in-transit' } });
        toTransit.disabled = !online || order.status !== 'pending';
        toTransit.addEventListener('click', () => move(order, 'in-transit'));
        const toDelivered = el('button', { className: 'small', text: 'Mark delivered', attrs: { 'data-action': 'delivered' } });
        toDelivered.disabled = !online || order.status !== 'in-transit';
        toDelivered.addEventListener('click', () => move(order, 'delivered'));
        const error = errors.get(key(order));
        const extra = el(
          'div',
          {},
          el('div', { className: 'order-actions' }, toTransit, toDelivered),
          error ? el('p', { className: 'order-error', text: error }) : null,
        );
        return orderCard(order, `${order.customer} · ${order.address} · from ${order.vendorId}`, extra);
      }),
    );
    $('pickup-count').textContent = String(list.length);
    $('pickups-empty').hidden = list.length > 0;
  }
})();
