'use strict';
// Helpers shared by the parcel-hub pages. Nothing here turns data into
// markup: every string from the hub or from a person reaches the page
// through textContent or setAttribute, never innerHTML.
window.ParcelHub = (() => {
  /** A new element; `text` becomes its textContent, children are appended. */
  function el(tag, options = {}, ...children) {
    const node = document.createElement(tag);
    if (options.className) node.className = options.className;
    if (options.text !== undefined && options.text !== null) node.textContent = String(options.text);
    for (const [name, value] of Object.entries(options.attrs || {})) node.setAttribute(name, String(value));
    for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
    return node;
  }

  /** `HH:MM:SS` of an RFC 3339 time (or of now). */
  function clock(iso) {
    const date = iso ? new Date(iso) : new Date();
    return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString([], { hour12: false });
  }

  function timeEl(iso) {
    return el('time', { text: clock(iso), attrs: { datetime: iso || new Date().toISOString() } });
  }

  /**
   * Opens a socket on `namespace` of this hub. WebSocket first, long-polling
   * only as a fallback: a refused or closed connection then leaves no
   * half-finished polling request behind to fail in the console.
   */
  function openSocket(namespace, auth) {
    return window.io(namespace, { auth, transports: ['websocket', 'polling'] });
  }

  /** Shows a socket's state on `node`; calls `onRefused(message)` when the hub says no. */
  function watchConnection(socket, node, onRefused) {
    const show = (state, text) => {
      node.dataset.state = state;
      node.textContent = text;
    };
    const transport = () => (socket.io.engine && socket.io.engine.transport ? socket.io.engine.transport.name : '');
    show('connecting', 'connecting…');
    socket.on('connect', () => {
      show('connected', `connected · ${transport()}`);
      socket.io.engine.once('upgrade', () => show('connected', `connected · ${transport()}`));
    });
    socket.on('disconnect', (reason) => {
      if (reason === 'io client disconnect') show('idle', 'disconnected');
      else show('connecting', `reconnecting… (${reason})`);
    });
    socket.on('connect_error', (err) => {
      // An active socket retries by itself; an inactive one was refused by the hub.
      if (socket.active) {
        show('connecting', `reconnecting… (${err.message})`);
      } else {
        show('error', 'refused');
        onRefused(err.message);
      }
    });
    return show;
  }

  /**
   * Emits with an acknowledgement; resolves to the ack envelope. No answer
   * within `ms` (or a closed connection) becomes a `timeout` envelope.
   */
  function request(socket, event, payload, ms = 8000) {
    return new Promise((resolve) => {
      socket.timeout(ms).emit(event, payload, (err, envelope) => {
        if (err) resolve({ ok: false, error: { code: 'timeout', message: 'the hub did not answer in time' } });
        else resolve(envelope);
      });
    });
  }

  /**
   * Reads what is queued with `getAll`, a page at a time (the hub answers
   * at most 500 and says `more`): `take(socket, envelope)` shows and
   * confirms each message (a promise of its `received`); the next page is
   * asked once the page is confirmed. At most `rounds` pages.
   */
  async function readQueue(socket, take, rounds = 200) {
    for (let round = 0; round < rounds; round += 1) {
      const answer = await request(socket, 'getAll', {});
      if (!answer.ok) return answer;
      await Promise.all(answer.messages.map((envelope) => take(socket, envelope)));
      if (!answer.more) return answer;
    }
    return { ok: true, messages: [], more: true };
  }

  /**
   * Reads a listing with `orders`: `status`, `limit` a page, at most `pages`
   * pages (from the cursor `before`). Resolves to `{ ok, orders, next }`,
   * or the refusal (`ok: false`) of the first page that failed.
   */
  async function listOrders(socket, status, limit, pages = 1, before = null) {
    const orders = [];
    let next = before;
    for (let page = 0; page < pages; page += 1) {
      const answer = await request(socket, 'orders', { status, limit, before: next });
      if (!answer.ok) return answer;
      orders.push(...answer.orders);
      next = answer.next;
      if (!next) break;
    }
    return { ok: true, orders, next };
  }

  /**
   * What a console knows about its orders: one entry per order, whichever
   * version is newest. Everything that carries an order (a listing, an
   * ack, a queued message, a live notice) goes through `put`, in any
   * order. A reload starts a fresh book that catches what arrives
   * meanwhile and replaces the old one when the listing is in, so orders
   * that left a listing (delivered by another tab, say) leave the page too.
   */
  function orderBook(onChange) {
    const key = (order) => `${order.vendorId}/${order.orderId}`;
    let orders = new Map();
    let fresh = null;
    const merge = (into, order) => into.set(key(order), newer(into.get(key(order)), order));
    return {
      put(order) {
        if (!order || !order.orderId) return;
        merge(orders, order);
        if (fresh) merge(fresh, order);
        onChange();
      },
      beginReload() {
        fresh = new Map();
      },
      finishReload() {
        if (fresh) orders = fresh;
        fresh = null;
        onChange();
      },
      clear() {
        orders = new Map();
        fresh = null;
        onChange();
      },
      get(order) {
        return orders.get(key(order));
      },
      /** Every order, the most recently updated first. */
      list() {
        return [...orders.values()].sort((a, b) => String(b.updatedAt).localeCompare(String(a.updatedAt)));
      },
      key,
    };
  }

  /** A fresh order id the vendor can use as its idempotency key. */
  function freshOrderId() {
    const random = Math.random().toString(36).slice(2, 6);
    return `o-${Date.now().toString(36)}-${random}`;
  }

  const STATUS_LABELS = { pending: 'pending', 'in-transit': 'in transit', delivered: 'delivered' };

  function statusBadge(status) {
    const known = Object.prototype.hasOwnProperty.call(STATUS_LABELS, status);
    return el('span', {
      className: `status ${known ? `status-${status}` : ''}`,
      text: known ? STATUS_LABELS[status] : status,
    });
  }

  /**
   * Keeps the newest version of an order: the later `updatedAt`, and when
   * two steps share a millisecond, the longer history. A stale status never
   * overwrites a newer one, whatever order the versions arrive in.
   */
  function newer(current, incoming) {
    if (!current) return incoming;
    const at = (o) => String(o.updatedAt || '');
    if (at(incoming) !== at(current)) return at(incoming) > at(current) ? incoming : current;
    const len = (o) => (Array.isArray(o.history) ? o.history.length : 0);
    return len(incoming) > len(current) ? incoming : current;
  }

  /** A card for one order: id, status, customer, address, timeline; `extra` goes last. */
  function orderCard(order, metaText, extra) {
    const timeline = el('ol', { className: 'timeline' });
    for (const step of order.history || []) {
      timeline.append(el('li', {}, statusBadge(step.status), timeEl(step.at)));
    }
    return el(
      'article',
      {
        className: 'order',
        attrs: { 'data-order-id': order.orderId, 'data-vendor-id': order.vendorId, 'data-status': order.status },
      },
      el('div', { className: 'order-head' }, el('span', { className: 'order-id', text: order.orderId }), statusBadge(order.status)),
      el('p', { className: 'order-meta', text: metaText }),
      timeline,
      extra,
    );
  }

  /** Wires the demo-credential chips of a sign-in form. */
  function demoChips(form, idField) {
    for (const chip of document.querySelectorAll('.chip[data-id]')) {
      chip.addEventListener('click', () => {
        form.elements[idField].value = chip.dataset.id;
        form.elements.token.value = chip.dataset.token;
      });
    }
  }

  /**
   * Opens a console's socket on `namespace` in place of `previous`. When the
   * hub refuses it and `forget(socket)` says it was still the page's socket
   * (and lets go of it), the page goes back to its sign-in card with the
   * hub's reason. Returns the socket and its connection-state setter.
   */
  function signIn(previous, namespace, auth, forget) {
    const byId = (id) => document.getElementById(id);
    if (previous) previous.disconnect();
    showError(byId('signin-error'), '');
    const socket = openSocket(namespace, auth);
    const show = watchConnection(socket, byId('conn'), (message) => {
      if (!forget(socket)) return;
      remembered.forget(namespace);
      byId('console').hidden = true;
      byId('signin').hidden = false;
      showError(byId('signin-error'), `The hub refused: ${message}`);
    });
    // Signed in: a reload of this tab signs in again by itself.
    socket.once('connect', () => remembered.keep(namespace, auth));
    return { socket, show };
  }

  /**
   * The identity a console tab signed in with, kept for this tab only
   * (sessionStorage: gone when the tab closes), so a reload reconnects and
   * shows the current state at once. Sign out forgets it.
   */
  const remembered = {
    keep(namespace, auth) {
      try {
        sessionStorage.setItem(`parcel-hub${namespace}`, JSON.stringify(auth));
      } catch (_) {
        // Storage may be off (private mode); then a reload asks again.
      }
    },
    recall(namespace) {
      try {
        return JSON.parse(sessionStorage.getItem(`parcel-hub${namespace}`) || 'null');
      } catch (_) {
        return null;
      }
    },
    forget(namespace) {
      try {
        sessionStorage.removeItem(`parcel-hub${namespace}`);
      } catch (_) {
        // Nothing kept, nothing to forget.
      }
    },
  };

  /** Shows `message` in the sign-in card, or hides the error with no message. */
  function showError(node, message) {
    node.textContent = message || '';
    node.hidden = !message;
  }

  // Without the browser client nothing can connect: say so instead of failing on click.
  // (Pages that use only plain HTTP, like /learn, do not load the client.)
  if (document.body.hasAttribute('data-socketio') && typeof window.io !== 'function') {
    document.querySelector('main').prepend(
      el('p', {
        className: 'error',
        text:
          'The Socket.IO browser client did not load, so this page cannot connect. ' +
          'Without Internet access, start the hub with --client-js PATH to serve a local copy.',
      }),
    );
    for (const button of document.querySelectorAll('#signin-form button')) button.disabled = true;
  }

  return {
    el,
    clock,
    timeEl,
    openSocket,
    watchConnection,
    signIn,
    remembered,
    request,
    readQueue,
    listOrders,
    orderBook,
    freshOrderId,
    statusBadge,
    newer,
    orderCard,
    demoChips,
    showError,
  };
})();
