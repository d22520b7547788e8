'use strict';
// Vendor console: sign in on /vendor, send pickups, follow orders, confirm notices.
(() => {
  const { el, timeEl, request, freshOrderId, newer, orderCard, demoChips, signIn } = window.ParcelHub;
  const $ = (id) => document.getElementById(id);
  const signinForm = $('signin-form');
  const pickupForm = $('pickup-form');
  const result = $('pickup-result');
  let socket = null;
  // Called when the hub refuses `s`: lets go of it if it is still this page's socket.
  const forget = (s) => {
    if (socket !== s) return false;
    socket = null;
    return true;
  };
  let orders = new Map(); // orderId -> order
  let shown = new Set(); // messageIds already shown as notices

  demoChips(signinForm, 'vendorId');

  signinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const vendorId = signinForm.elements.vendorId.value.trim();
    const token = signinForm.elements.token.value;
    connect(vendorId, token);
  });

  $('signout').addEventListener('click', () => {
    if (socket) socket.disconnect();
    socket = null;
    orders = new Map();
    shown = new Set();
    $('notices').replaceChildren();
    renderOrders();
    $('console').hidden = true;
    $('signin').hidden = false;
  });

  function connect(vendorId, token) {
    socket = signIn(socket, '/vendor', { vendorId, token }, forget).socket;
    const current = socket;
    socket.on('connect', () => {
      $('who').textContent = vendorId;
      $('signin').hidden = true;
      $('console').hidden = false;
      if (!pickupForm.elements.orderId.value) pickupForm.elements.orderId.value = freshOrderId();
      catchUp(current);
    });
    socket.on('in-transit', (envelope) => notice(current, envelope));
    socket.on('delivered', (envelope) => notice(current, envelope));
  }

  // Every (re)connect reads what queued up while this page was away.
  async function catchUp(from) {
    const answer = await request(from, 'getAll', {});
    if (!answer.ok) return;
    for (const envelope of answer.messages) notice(from, envelope);
  }

  function notice(from, envelope) {
    if (!envelope || !envelope.order) return;
    upsert(envelope.order);
    let line = null;
    if (!shown.has(envelope.messageId)) {
      shown.add(envelope.messageId);
      const order = envelope.order;
      const what = envelope.event === 'delivered' ? 'was delivered' : 'is in transit';
      line = el(
        'li',
        { attrs: { 'data-message-id': envelope.messageId, 'data-event': envelope.event } },
        timeEl(envelope.at),
        el('span', { text: `${order.orderId} ${what} (${order.distributorId})` }),
      );
      $('notices').prepend(line);
      $('notices-empty').hidden = true;
    }
    // Confirm only after it is on screen; a repeat is confirmed again (harmless).
    request(from, 'received', { messageId: envelope.messageId }).then((answer) => {
      if (answer.ok && line) line.append(el('span', { className: 'confirmed', text: '✓ confirmed' }));
    });
  }

  pickupForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!socket) return;
    const fields = Object.fromEntries(new FormData(pickupForm));
    const button = pickupForm.querySelector('button[type="submit"]');
    button.disabled = true;
    result.className = 'result';
    result.textContent = 'sending…';
    const answer = await request(socket, 'pickup', fields);
    button.disabled = false;
    if (answer.ok) {
      upsert(answer.order);
      result.className = 'result ok';
      result.textContent = answer.duplicate
        ? `${answer.order.orderId} was already recorded`
        : `${answer.order.orderId} sent to ${answer.order.distributorId}`;
      pickupForm.elements.orderId.value = freshOrderId();
      pickupForm.elements.customer.value = '';
      pickupForm.elements.address.value = '';
    } else {
      result.className = 'result bad';
      result.textContent = `${answer.error.code}: ${answer.error.message}`;
    }
  });

  function upsert(order) {
    orders.set(order.orderId, newer(orders.get(order.orderId), order));
    renderOrders();
  }

  function renderOrders() {
    const list = [...orders.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
    $('orders').replaceChildren(
      ...list.map((order) => orderCard(order, `${order.customer} · ${order.address} · via ${order.distributorId}`)),
    );
    $('order-count').textContent = String(list.length);
    $('orders-empty').hidden = list.length > 0;
  }
})();
