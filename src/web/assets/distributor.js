'use strict';
// Distributor console: sign in on /distributor, take pickups, move orders, go offline.
//
// Every (re)connect reads the open orders and the latest delivered ones as
// they are (`orders`) before the queued pickups (`getAll`); live pickups
// and the `order` notices of this distributor's other tabs land in the same
// book, where the newest version of an order wins. Open orders show the one
// step they can take next; delivered ones move to "Done".
(() => {
  const { el, request, readQueue, listOrders, orderBook, remembered, orderCard, demoChips, signIn } = window.ParcelHub;
  const $ = (id) => document.getElementById(id);
  const signinForm = $('signin-form');
  const offline = $('offline');
  const OPEN_PAGE = 500;
  const OPEN_PAGES = 20; // up to 10,000 open orders on screen
  const DONE_PAGE = 20;
  let socket = null;
  // Called when the hub refuses `s`: lets go of it if it is still this page's socket.
  const forget = (s) => {
    if (socket !== s) return false;
    socket = null;
    return true;
  };
  let show = null;
  const book = orderBook(render);
  let doneFrom = null; // the cursor of the next older page of Done, if any
  const errors = new Map(); // order key -> last refusal shown on its card
  const moving = new Set(); // order keys with a step in flight

  demoChips(signinForm, 'distributorId');

  signinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    connect(signinForm.elements.distributorId.value.trim(), signinForm.elements.token.value);
  });

  $('signout').addEventListener('click', () => {
    if (socket) socket.disconnect();
    socket = null;
    remembered.forget('/distributor');
    errors.clear();
    moving.clear();
    doneFrom = null;
    book.clear();
    offline.checked = false;
    $('offline-note').hidden = true;
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

  $('done-more').addEventListener('click', async () => {
    if (!socket || !doneFrom) return;
    const button = $('done-more');
    button.disabled = true;
    const answer = await listOrders(socket, 'delivered', DONE_PAGE, 1, doneFrom);
    button.disabled = false;
    if (!answer.ok) return showListError(answer);
    for (const order of answer.orders) book.put(order);
    doneFrom = answer.next;
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
    // An order another tab of this distributor moved.
    socket.on('order', (payload) => book.put(payload && payload.order));
  }

  // Every (re)connect: the orders as they are first, then the queued pickups.
  let loads = 0; // a reconnect during a load starts a newer one, which alone finishes
  async function catchUp(from) {
    const load = ++loads;
    book.beginReload();
    const open = await listOrders(from, 'open', OPEN_PAGE, OPEN_PAGES);
    const done = open.ok ? await listOrders(from, 'delivered', DONE_PAGE) : open;
    if (socket !== from || load !== loads) return;
    if (!done.ok) {
      book.finishReload();
      return showListError(done);
    }
    $('pickups-error').hidden = true;
    for (const order of [...open.orders, ...done.orders]) book.put(order);
    doneFrom = done.next;
    book.finishReload();
    await readQueue(from, take);
  }

  function showListError(answer) {
    $('pickups-error').textContent = `Could not read your orders: ${answer.error.code}: ${answer.error.message}`;
    $('pickups-error').hidden = false;
  }

  function take(from, envelope) {
    if (!envelope || !envelope.order) return undefined;
    book.put(envelope.order);
    return request(from, 'received', { messageId: envelope.messageId });
  }

  async function move(order, event) {
    const key = book.key(order);
    if (!socket || moving.has(key)) return;
    moving.add(key);
    render();
    const answer = await request(socket, event, { vendorId: order.vendorId, orderId: order.orderId });
    moving.delete(key);
    if (answer.ok) {
      errors.delete(key);
      book.put(answer.order);
    } else {
      errors.set(key, `${answer.error.code}: ${answer.error.message}`);
      render();
    }
  }

  /** The one step an open order can take next, as a button. */
  function nextStep(order, online) {
    const step = order.status === 'pending'
      ? { event: 'in-transit', text: 'Mark in transit' }
      : { event: 'delivered', text: 'Mark delivered' };
    const button = el('button', { className: 'small', text: step.text, attrs: { 'data-action': step.event } });
    button.disabled = !online || moving.has(book.key(order));
    button.addEventListener('click', () => move(order, step.event));
    return button;
  }

  function render() {
    const online = Boolean(socket && socket.connected);
    const list = book.list();
    const open = list.filter((order) => order.status !== 'delivered');
    const done = list.filter((order) => order.status === 'delivered');
    const meta = (order) => `${order.customer} · ${order.address} · from ${order.vendorId}`;
    $('pickups').replaceChildren(
      ...open.map((order) => {
        const error = errors.get(book.key(order));
        const extra = el(
          'div',
          {},
          el('div', { className: 'order-actions' }, nextStep(order, online)),
          error ? el('p', { className: 'order-error', text: error }) : null,
        );
        return orderCard(order, meta(order), extra);
      }),
    );
    $('done').replaceChildren(...done.map((order) => orderCard(order, meta(order))));
    $('pickup-count').textContent = String(open.length);
    $('done-count').textContent = String(done.length);
    $('pickups-empty').hidden = open.length > 0;
    $('done-empty').hidden = done.length > 0;
    $('done-more').hidden = !doneFrom;
  }

  // A reload of a signed-in tab signs in again and shows the orders as they are.
  const again = remembered.recall('/distributor');
  if (again && again.distributorId && again.token) connect(again.distributorId, again.token);
})();
