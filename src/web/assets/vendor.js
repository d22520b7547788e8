'use strict';
// Vendor console: sign in on /vendor, send pickups, follow orders, confirm notices.
//
// Every (re)connect reads the orders as they are (`orders`, newest first)
// before the queued news (`getAll`); live news and the `order` notices of
// this vendor's other tabs land in the same book, where the newest version
// of an order wins, so nothing stale is ever shown over something newer.
(() => {
  const { el, timeEl, request, readQueue, listOrders, orderBook, remembered, freshOrderId, orderCard, demoChips, signIn } = window.ParcelHub;
  const $ = (id) => document.getElementById(id);
  const signinForm = $('signin-form');
  const pickupForm = $('pickup-form');
  const sendButton = pickupForm.querySelector('button[type="submit"]');
  const result = $('pickup-result');
  const PAGE = 50;
  let socket = null;
  let credentials = null; // { vendorId, token } of the socket, for the HTTP order lookup
  let sending = false;
  let olderFrom = null; // the cursor of the next older page, if any
  // Called when the hub refuses `s`: lets go of it if it is still this page's socket.
  const forget = (s) => {
    if (socket !== s) return false;
    socket = null;
    syncSend();
    return true;
  };
  const book = orderBook(renderOrders);
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
    credentials = null;
    remembered.forget('/vendor');
    book.clear();
    shown = new Set();
    olderFrom = null;
    $('notices').replaceChildren();
    $('notices-empty').hidden = false;
    result.textContent = '';
    $('console').hidden = true;
    $('signin').hidden = false;
  });

  $('older').addEventListener('click', async () => {
    if (!socket || !olderFrom) return;
    const button = $('older');
    button.disabled = true;
    const answer = await listOrders(socket, 'all', PAGE, 1, olderFrom);
    button.disabled = false;
    if (!answer.ok) return showListError(answer);
    for (const order of answer.orders) book.put(order);
    olderFrom = answer.next;
    renderOrders();
  });

  function connect(vendorId, token) {
    credentials = { vendorId, token };
    socket = signIn(socket, '/vendor', { vendorId, token }, forget).socket;
    const current = socket;
    socket.on('connect', () => {
      $('who').textContent = vendorId;
      $('signin').hidden = true;
      $('console').hidden = false;
      if (!pickupForm.elements.orderId.value) pickupForm.elements.orderId.value = freshOrderId();
      syncSend();
      catchUp(current);
    });
    socket.on('disconnect', () => syncSend());
    socket.on('in-transit', (envelope) => notice(current, envelope));
    socket.on('delivered', (envelope) => notice(current, envelope));
    // An order this vendor created in another tab (or over HTTP).
    socket.on('order', (payload) => book.put(payload && payload.order));
  }

  // Every (re)connect: the orders as they are first, then what queued up.
  let loads = 0; // a reconnect during a load starts a newer one, which alone finishes
  async function catchUp(from) {
    const load = ++loads;
    book.beginReload();
    const listed = await listOrders(from, 'all', PAGE);
    if (socket !== from || load !== loads) return;
    if (!listed.ok) {
      book.finishReload();
      return showListError(listed);
    }
    $('orders-error').hidden = true;
    for (const order of listed.orders) book.put(order);
    olderFrom = listed.next;
    book.finishReload();
    await readQueue(from, notice);
  }

  function showListError(answer) {
    $('orders-error').textContent = `Could not read your orders: ${answer.error.code}: ${answer.error.message}`;
    $('orders-error').hidden = false;
  }

  function notice(from, envelope) {
    if (!envelope || !envelope.order) return undefined;
    book.put(envelope.order);
    let line = null;
    if (!shown.has(envelope.messageId)) {
      shown.add(envelope.messageId);
      const order = envelope.order;
      const what = envelope.event === 'delivered' ? 'was delivered' : 'is in transit';
      line = el(
        'li',
        { attrs: { 'data-message-id': envelope.messageId, 'data-event': envelope.event } },
        timeEl(envelope.at),
        el(
          'span',
          {},
          el('strong', { text: order.customer }),
          ` · ${order.orderId} ${what} (${order.distributorId})`,
        ),
      );
      $('notices').prepend(line);
      $('notices-empty').hidden = true;
    }
    // Confirm only after it is on screen; a repeat is confirmed again (harmless).
    return request(from, 'received', { messageId: envelope.messageId }).then((answer) => {
      if (answer.ok && line) line.append(el('span', { className: 'confirmed', text: '✓ confirmed' }));
    });
  }

  /** "Send pickup" works only while connected and not already sending. */
  function syncSend() {
    const online = Boolean(socket && socket.connected);
    sendButton.disabled = sending || !online;
    $('send-offline').hidden = online || !socket;
  }

  function say(kind, text) {
    result.className = `result ${kind}`;
    result.textContent = text;
  }

  pickupForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!socket || !socket.connected || sending) return;
    const fields = Object.fromEntries(new FormData(pickupForm));
    sending = true;
    syncSend();
    say('', 'sending…');
    const answer = await request(socket, 'pickup', fields);
    if (answer.ok) {
      sent(answer.order, answer.duplicate);
    } else if (answer.error.code === 'timeout') {
      say('', `no answer from the hub in time; asking whether ${fields.orderId} was recorded…`);
      await askWhetherRecorded(fields);
    } else {
      say('bad', `${answer.error.code}: ${answer.error.message}`);
    }
    sending = false;
    syncSend();
  });

  /** The pickup is in: show it and offer a fresh form. */
  function sent(order, duplicate) {
    book.put(order);
    say(
      'ok',
      duplicate
        ? `${order.orderId} for ${order.customer} was already recorded`
        : `${order.orderId} for ${order.customer} sent to ${order.distributorId}`,
    );
    pickupForm.elements.orderId.value = freshOrderId();
    pickupForm.elements.customer.value = '';
    pickupForm.elements.address.value = '';
  }

  /**
   * After a pickup got no answer: the vendor's own order lookup says
   * whether the hub recorded it. The form keeps the same order id, so
   * sending again can never record it twice.
   */
  async function askWhetherRecorded(fields) {
    const { vendorId, token } = credentials || {};
    let response;
    try {
      response = await fetch(`/api/orders/${encodeURIComponent(vendorId)}/${encodeURIComponent(fields.orderId)}`, {
        headers: { authorization: `Basic ${base64(`${vendorId}:${token}`)}` },
        cache: 'no-store',
      });
    } catch (_) {
      return say('bad', `could not reach the hub to ask about ${fields.orderId}; sending it again is safe (the same order id is never recorded twice)`);
    }
    const body = await response.json().catch(() => null);
    if (response.status === 404 && body && body.error && body.error.code === 'unknown_order') {
      return say('bad', `${fields.orderId} was not recorded: safe to send again`);
    }
    if (response.ok && body && body.ok) {
      const order = body.order;
      const same = order.distributorId === fields.distributorId
        && order.customer === String(fields.customer).trim()
        && order.address === String(fields.address).trim();
      if (!same) {
        return say('bad', `${order.orderId} is already used by another pickup (for ${order.customer}); pick another order id`);
      }
      sent(order, false);
      return say('ok', `${order.orderId} for ${order.customer} was recorded (${order.status}), though its answer was lost`);
    }
    const why = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${response.status}`;
    return say('bad', `could not ask the hub about ${fields.orderId} (${why}); sending it again is safe`);
  }

  /** Base64 of a string's UTF-8 bytes (btoa alone takes Latin-1 only). */
  function base64(text) {
    let binary = '';
    for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
    return btoa(binary);
  }

  function renderOrders() {
    const list = book.list();
    $('orders').replaceChildren(
      ...list.map((order) => orderCard(order, `${order.customer} · ${order.address} · via ${order.distributorId}`)),
    );
    $('order-count').textContent = String(list.length);
    $('orders-empty').hidden = list.length > 0;
    $('older').hidden = !olderFrom;
  }

  syncSend();
  // A reload of a signed-in tab signs in again and shows the orders as they are.
  const again = remembered.recall('/vendor');
  if (again && again.vendorId && again.token) connect(again.vendorId, again.token);
})();
