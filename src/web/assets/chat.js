'use strict';
// Chat: the Socket.IO chat example on /chat. Messages are text, never markup.
(() => {
  const { el, clock, request, signIn } = window.ParcelHub;
  const $ = (id) => document.getElementById(id);
  const signinForm = $('signin-form');
  const messageForm = $('message-form');
  const input = $('message');
  const target = $('target');
  let socket = null;
  // Called when the hub refuses `s`: lets go of it if it is still this page's socket.
  const forget = (s) => {
    if (socket !== s) return false;
    socket = null;
    return true;
  };
  let me = '';
  let online = new Set();
  let rooms = new Map(); // room -> members
  const typing = new Map(); // name -> room ('' for everyone)
  let typingSent = false;
  let typingTimer = null;
  // The history: the last offset seen for everyone ('') and per room, and
  // the offsets shown, so a message heard twice is shown once.
  let seen = new Map();
  let shown = new Set();
  // Between CONNECT and `users`, the hub hands over what we missed.
  let catchingUp = null; // { label, count } while it does
  let everConnected = false;
  let retries = 0;
  const MAX_RETRIES = 15;

  signinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    connect(signinForm.elements.name.value.trim());
  });

  $('signout').addEventListener('click', () => {
    if (socket) socket.disconnect();
    socket = null;
    reset();
    $('console').hidden = true;
    $('signin').hidden = false;
  });

  // A closing or reloading tab leaves at once, so its name is free for the next page;
  // a page brought back from the back-forward cache comes back in.
  window.addEventListener('pagehide', () => {
    if (socket) socket.disconnect();
  });
  window.addEventListener('pageshow', (event) => {
    if (event.persisted && socket && !socket.connected) socket.connect();
  });

  function reset() {
    online = new Set();
    rooms = new Map();
    seen = new Map();
    shown = new Set();
    everConnected = false;
    typing.clear();
    $('messages').replaceChildren();
    renderRooms();
    renderOnline();
    renderTyping();
  }

  /** Notes `offset` as seen where it was said; false if it was already shown. */
  function note(offset, room) {
    if (typeof offset !== 'number') return true;
    const key = room || '';
    if (!(seen.get(key) >= offset)) seen.set(key, offset);
    if (shown.has(offset)) return false;
    shown.add(offset);
    return true;
  }

  function connect(name) {
    reset();
    me = name;
    // A function, so every reconnect sends the last offset seen; the first
    // connect sends 0: the newest messages the hub kept.
    const auth = (cb) => cb({ name, offset: seen.get('') || 0 });
    socket = signIn(socket, '/chat', auth, (s) => refused(s, name)).socket;
    const current = socket;
    socket.on('connect', async () => {
      const again = everConnected;
      everConnected = true;
      retries = 0;
      $('who').textContent = name;
      $('signin').hidden = true;
      $('console').hidden = false;
      catchingUp = { label: again ? 'Missed while you were away' : 'Earlier messages', kind: again ? 'missed' : 'history', count: 0 };
      if (!again) system(`You joined the chat as ${name}.`);
      else system('Reconnected.');
      // Rejoin every room after a reconnect, with what was missed there.
      for (const room of [...rooms.keys()]) await join(current, room, again);
      input.focus();
    });
    socket.on('chat message', (message) => {
      if (!note(message.offset, message.room)) return;
      const from = message.from === me ? null : message.from;
      if (catchingUp && !message.room) {
        if (catchingUp.count === 0) divider(catchingUp.label, catchingUp.kind);
        catchingUp.count += 1;
        showMessage(from, message.text, message.room, message.at, catchingUp.kind);
      } else {
        showMessage(from, message.text, message.room, message.at, null);
      }
      typing.delete(message.from);
      renderTyping();
    });
    socket.on('users', ({ users }) => {
      if (catchingUp && catchingUp.count > 0) divider('Now', 'now');
      catchingUp = null;
      online = new Set(users);
      online.add(me);
      renderOnline();
    });
    socket.on('user connected', ({ name: who }) => {
      system(`${who} joined the chat`);
      online.add(who);
      renderOnline();
    });
    socket.on('user disconnected', ({ name: who }) => {
      system(`${who} left the chat`);
      typing.delete(who);
      renderTyping();
      online.delete(who);
      renderOnline();
    });
    socket.on('user joined', ({ name: who, room, members }) => {
      system(`${who} joined #${room}`);
      rooms.set(room, members);
      renderRooms();
    });
    socket.on('user left', ({ name: who, room, members }) => {
      system(`${who} left #${room}`);
      if (rooms.has(room)) rooms.set(room, members);
      renderRooms();
    });
    socket.on('typing', ({ name: who, room }) => {
      typing.set(who, room || '');
      renderTyping();
    });
    socket.on('stop typing', ({ name: who }) => {
      typing.delete(who);
      renderTyping();
    });
  }

  // The hub refused `s`. After a reconnect that is most likely our own
  // previous connection, which the hub has not seen go yet (`name_taken`):
  // try again for a while. Otherwise, back to the sign-in card.
  function refused(s, name) {
    if (socket !== s) return false;
    if (everConnected && retries < MAX_RETRIES) {
      retries += 1;
      system(`The hub still has your previous connection; trying again (${retries} of ${MAX_RETRIES})…`);
      setTimeout(() => {
        if (socket === s && me === name) s.connect();
      }, 2000);
      return false;
    }
    socket = null;
    return true;
  }

  /** Joins `room`; shows what was said there after the last offset seen (all kept, the first time). */
  async function join(from, room, again) {
    const payload = seen.has(room) ? { room, offset: seen.get(room) } : { room };
    const answer = await request(from, 'join', payload);
    if (!answer.ok) {
      system(`Could not join #${room}: ${answer.error.message}`);
      return;
    }
    rooms.set(answer.room, answer.members);
    if (!again) system(`You joined #${answer.room}`);
    const history = (answer.history || []).filter((m) => note(m.offset, m.room));
    if (history.length > 0) {
      const kind = again ? 'missed' : 'history';
      divider(again ? `Missed in #${answer.room}` : `Earlier in #${answer.room}`, kind);
      for (const m of history) showMessage(m.from === me ? null : m.from, m.text, m.room, m.at, kind);
    }
    renderRooms();
  }

  async function leave(room) {
    if (!socket) return;
    const answer = await request(socket, 'leave', { room });
    if (!answer.ok) {
      system(`Could not leave #${room}: ${answer.error.message}`);
      return;
    }
    rooms.delete(room);
    system(`You left #${room}`);
    renderRooms();
  }

  $('join-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const field = event.target.elements.room;
    const room = field.value.trim();
    if (!socket || !room) return;
    field.value = '';
    join(socket, room, false).then(() => {
      if (rooms.has(room)) target.value = room;
    });
  });

  messageForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!socket || !text.trim()) return;
    const room = target.value;
    const payload = room ? { text, room } : { text };
    input.value = '';
    stopTyping();
    const answer = await request(socket, 'chat message', payload);
    // The hub does not echo to the sender: our own message is shown from the ack.
    if (answer.ok) {
      if (note(answer.offset, room)) showMessage(null, text, room || undefined, answer.at, null);
    } else system(`Not sent: ${answer.error.message}`);
  });

  input.addEventListener('input', () => {
    if (!socket) return;
    if (!typingSent) {
      typingSent = true;
      socket.emit('typing', typingPayload());
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 1500);
  });

  function typingPayload() {
    return target.value ? { room: target.value } : {};
  }

  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingSent && socket) socket.emit('stop typing', typingPayload());
    typingSent = false;
  }

  /** One message; `from` null for our own; `kind` 'history' or 'missed' marks one from the history. */
  function showMessage(from, text, room, at, kind) {
    const mine = from === null;
    const meta = el('span', { className: 'msg-meta' }, `${mine ? 'you' : from} · ${clock(at)}`);
    if (room) meta.append(' ', el('span', { className: 'room-tag', text: `#${room}` }));
    if (kind === 'missed') meta.append(' ', el('span', { className: 'missed-tag', text: 'missed' }));
    const classes = [mine ? 'mine' : 'theirs', kind || ''].join(' ').trim();
    append(el('li', { className: classes }, meta, el('span', { className: 'bubble', text })));
  }

  /** A line that starts a run of history ('history', 'missed') or ends it ('now'). */
  function divider(text, kind) {
    append(el('li', { className: `divider ${kind}`, text }));
  }

  function system(text) {
    append(el('li', { className: 'system', text }));
  }

  function append(item) {
    const list = $('messages');
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    while (list.children.length > 500) list.firstElementChild.remove();
    if (atBottom || item.classList.contains('mine')) list.scrollTop = list.scrollHeight;
  }

  function renderRooms() {
    const selected = target.value;
    const names = [...rooms.keys()].sort();
    $('rooms').replaceChildren(
      ...names.map((room) => {
        const button = el('button', { className: 'secondary small', text: 'Leave' });
        button.addEventListener('click', () => leave(room));
        const members = rooms.get(room) || [];
        return el(
          'li',
          { attrs: { 'data-room': room } },
          el('span', {}, el('span', { className: 'room-name', text: `#${room}` }), ' ', el('span', { className: 'members', text: `${members.length} here` })),
          button,
        );
      }),
    );
    target.replaceChildren(el('option', { text: 'Everyone', attrs: { value: '' } }), ...names.map((room) => el('option', { text: `#${room}`, attrs: { value: room } })));
    target.value = rooms.has(selected) ? selected : '';
  }

  function renderOnline() {
    const names = [...online].sort((a, b) => a.localeCompare(b));
    $('online').replaceChildren(
      ...names.map((name) => el('li', {}, el('span', { text: name }), name === me ? el('span', { className: 'you', text: 'you' }) : null)),
    );
    $('online-count').textContent = String(names.length);
  }

  function renderTyping() {
    const where = target.value;
    const names = [...typing].filter(([, room]) => room === where).map(([name]) => name);
    $('typing').textContent =
      names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
  }

  target.addEventListener('change', () => {
    stopTyping();
    renderTyping();
  });
})();
