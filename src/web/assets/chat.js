'use strict';
// Chat: the Socket.IO chat example on /chat. Messages are text, never markup.
(() => {
  const { el, clock, request, signIn } = window.ParcelHub;
  const $ = (id) => document.getElementById(id);
  const LOBBY = 'lobby';
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

  function reset() {
    online = new Set();
    rooms = new Map();
    typing.clear();
    $('messages').replaceChildren();
    renderRooms();
    renderOnline();
    renderTyping();
  }

  function connect(name) {
    socket = signIn(socket, '/chat', { name }, forget).socket;
    const current = socket;
    socket.on('connect', async () => {
      me = name;
      $('who').textContent = name;
      $('signin').hidden = true;
      $('console').hidden = false;
      online.add(me);
      renderOnline();
      system(`You joined the chat as ${name}.`);
      // The lobby tells a newcomer who is already here; rejoin every room after a reconnect.
      const wanted = new Set([LOBBY, ...rooms.keys()]);
      for (const room of wanted) await join(current, room, room === LOBBY);
      input.focus();
    });
    socket.on('chat message', (message) => {
      showMessage(message.from, message.text, message.room, message.at, false);
      typing.delete(message.from);
      renderTyping();
    });
    socket.on('user connected', ({ name: who, users }) => {
      system(`${who} joined the chat`);
      setOnline(users);
    });
    socket.on('user disconnected', ({ name: who, users }) => {
      system(`${who} left the chat`);
      typing.delete(who);
      renderTyping();
      setOnline(users);
    });
    socket.on('user joined', ({ name: who, room, members }) => {
      // Everyone enters the lobby on connect; "joined the chat" already said so.
      if (room !== LOBBY) system(`${who} joined #${room}`);
      rooms.set(room, members);
      for (const member of members) online.add(member);
      renderRooms();
      renderOnline();
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

  function setOnline(users) {
    online = new Set(users);
    online.add(me);
    renderOnline();
  }

  async function join(from, room, quiet) {
    const answer = await request(from, 'join', { room });
    if (!answer.ok) {
      system(`Could not join #${room}: ${answer.error.message}`);
      return;
    }
    rooms.set(answer.room, answer.members);
    for (const member of answer.members) online.add(member);
    if (!quiet) system(`You joined #${answer.room}`);
    renderRooms();
    renderOnline();
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
    if (answer.ok) showMessage(me, text, room || undefined, answer.at, true);
    else system(`Not sent: ${answer.error.message}`);
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

  function showMessage(from, text, room, at, mine) {
    const meta = el('span', { className: 'msg-meta' }, `${mine ? 'you' : from} · ${clock(at)}`);
    if (room) meta.append(' ', el('span', { className: 'room-tag', text: `#${room}` }));
    append(el('li', { className: mine ? 'mine' : 'theirs' }, meta, el('span', { className: 'bubble', text })));
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
