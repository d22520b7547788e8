'use strict';
// Inspector: the /inspector namespace drawn as a tree, a queue table and a live feed.
(() => {
  const { el, clock, timeEl, signIn } = window.ParcelHub;
  const $ = (id) => document.getElementById(id);
  const MAX_ROWS = 300;
  const signinForm = $('signin-form');
  const pauseButton = $('pause');
  let socket = null;
  // Called when the hub refuses `s`: lets go of it if it is still this page's socket.
  const forget = (s) => {
    if (socket !== s) return false;
    socket = null;
    return true;
  };
  let paused = false;
  let held = []; // records that arrived while paused
  let records = []; // newest last, at most MAX_ROWS
  let lastSeq = 0;
  let drawScheduled = false;

  signinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    connect(signinForm.elements.token.value);
  });

  $('signout').addEventListener('click', () => {
    if (socket) socket.disconnect();
    socket = null;
    $('console').hidden = true;
    $('signin').hidden = false;
  });

  function connect(token) {
    socket = signIn(socket, '/inspector', { token }, forget).socket;
    const current = socket;
    socket.on('connect', () => {
      // Records from while this page was away were never meant for it: no gap.
      lastSeq = 0;
      $('signin').hidden = true;
      $('console').hidden = false;
    });
    socket.on('snapshot', drawSnapshot);
    socket.on('activity', (record) => {
      if (paused) {
        held.push(record);
        // Only the newest rows are ever shown; the gap row tells what was dropped.
        if (held.length > MAX_ROWS) held.shift();
        pauseButton.textContent = `Resume (${held.length} new)`;
      } else {
        addRecords([record]);
      }
    });
  }

  // ---- snapshot ----

  function drawSnapshot(snapshot) {
    let sockets = 0;
    const tree = snapshot.namespaces.map((ns) => {
      sockets += ns.sockets.length;
      const byId = new Map(ns.sockets.map((s) => [s.id, s]));
      const body = [];
      for (const room of ns.rooms) {
        body.push(
          el(
            'div',
            { className: 'room', attrs: { 'data-room': room.name } },
            el('div', {}, el('span', { className: 'room-name', text: room.name }), ' ', el('span', { className: 'members', text: `${room.members.length} socket${room.members.length === 1 ? '' : 's'}` })),
            ...room.members.map((id) => socketLine(byId.get(id) || { id, identity: '?', rooms: [] })),
          ),
        );
      }
      const roomless = ns.sockets.filter((s) => s.rooms.length === 0);
      if (roomless.length > 0) {
        body.push(el('div', { className: 'room' }, el('div', { className: 'members', text: 'in no room' }), ...roomless.map(socketLine)));
      }
      if (ns.sockets.length === 0) body.push(el('p', { className: 'empty', text: 'no sockets' }));
      const details = el(
        'details',
        { className: 'ns', attrs: { 'data-ns': ns.name } },
        el('summary', {}, el('code', { text: ns.name }), el('span', { className: 'members', text: `${ns.sockets.length} socket${ns.sockets.length === 1 ? '' : 's'} · ${ns.rooms.length} room${ns.rooms.length === 1 ? '' : 's'}` })),
        ...body,
      );
      details.open = true;
      return details;
    });
    $('tree').replaceChildren(...tree);
    $('queues').replaceChildren(
      ...snapshot.queues.map((q) => el('tr', { attrs: { 'data-owner': q.owner } }, el('td', { className: 'mono', text: q.owner }), el('td', { className: 'num', text: q.depth }))),
    );
    $('queues-empty').hidden = snapshot.queues.length > 0;
    const queued = snapshot.queues.reduce((sum, q) => sum + q.depth, 0);
    $('summary').textContent = `${sockets} socket${sockets === 1 ? '' : 's'} · ${queued} queued message${queued === 1 ? '' : 's'} · hub ${String(snapshot.hub || '').slice(0, 8)} · updated ${clock(snapshot.at)}`;
  }

  function socketLine(s) {
    const line = el(
      'div',
      { className: 'sock', attrs: { 'data-sid': s.id } },
      // A chat name is known only to the hub the socket is on.
      el('strong', { text: s.identity || 'someone' }),
      el('span', { className: 'sid', text: s.id }),
      s.transport ? el('span', { className: `tag ${s.transport === 'websocket' ? 'websocket' : 'polling'}`, text: s.transport }) : null,
      s.local === false ? el('span', { className: 'tag', text: `on hub ${String(s.hub).slice(0, 8)}` }) : null,
    );
    if (s.rooms.length > 0) line.append(el('span', { className: 'members', text: `rooms: ${s.rooms.join(', ')}` }));
    if (s.connectedAt) line.append(el('span', { className: 'members', text: `since ${clock(s.connectedAt)}` }));
    return line;
  }

  // ---- activity ----

  function addRecords(list) {
    for (const record of list) {
      if (lastSeq && record.seq > lastSeq + 1) {
        records.push({ gap: record.seq - lastSeq - 1, seq: record.seq - 0.5 });
      }
      lastSeq = Math.max(lastSeq, record.seq);
      records.push(record);
    }
    if (records.length > MAX_ROWS) records = records.slice(records.length - MAX_ROWS);
    // A busy hub sends many records per frame: draw once per frame.
    if (!drawScheduled) {
      drawScheduled = true;
      requestAnimationFrame(() => {
        drawScheduled = false;
        drawFeed();
      });
    }
  }

  function matches(record) {
    if (record.gap) return true;
    const ns = $('filter-ns').value;
    const text = $('filter-event').value.trim().toLowerCase();
    return (!ns || record.namespace === ns) && (!text || record.event.toLowerCase().includes(text));
  }

  function drawFeed() {
    const rows = [];
    for (let i = records.length - 1; i >= 0; i -= 1) {
      const record = records[i];
      if (matches(record)) rows.push(record.gap ? gapRow(record.gap) : row(record));
    }
    $('activity').replaceChildren(...rows);
    $('activity-count').textContent = String(records.filter((r) => !r.gap).length);
    $('activity-empty').hidden = records.length > 0;
  }

  function gapRow(count) {
    return el('tr', {}, el('td', { className: 'members', text: `… ${count} record${count === 1 ? '' : 's'} skipped (the feed fell behind)`, attrs: { colspan: 8 } }));
  }

  function row(r) {
    const incoming = r.direction === 'in';
    const who = incoming ? r.identity || r.socket || '' : r.target || '';
    const outcome = r.outcome || '';
    const payloadText = JSON.stringify(r.payload);
    const payload = el(
      'details',
      { className: 'payload' },
      el('summary', { text: payloadText === undefined ? '' : payloadText }),
      el('pre', { text: JSON.stringify(r.payload, null, 2) }),
    );
    return el(
      'tr',
      { attrs: { 'data-seq': r.seq, 'data-event': r.event, 'data-ns': r.namespace } },
      el('td', {}, timeEl(r.at)),
      el('td', {}, el('code', { text: r.namespace })),
      el('td', { className: incoming ? 'dir-in' : 'dir-out', text: incoming ? '→ in' : '← out', attrs: { title: incoming ? 'to the hub' : 'from the hub' } }),
      el('td', {}, el('strong', { text: r.event })),
      el('td', { text: who }),
      el('td', { className: 'num', text: r.recipients === undefined || r.recipients === null ? '' : r.recipients }),
      el(
        'td',
        { className: outcome === 'ok' ? 'outcome-ok' : 'outcome-bad' },
        outcome,
        // Why a refusal was refused: the sentence the client got (or would have).
        r.reason ? el('span', { className: 'reason', text: r.reason }) : null,
      ),
      el('td', { className: 'payload' }, payload),
    );
  }

  pauseButton.addEventListener('click', () => {
    paused = !paused;
    pauseButton.setAttribute('aria-pressed', String(paused));
    pauseButton.classList.toggle('paused', paused);
    pauseButton.textContent = paused ? 'Resume' : 'Pause';
    if (!paused && held.length > 0) {
      const list = held;
      held = [];
      addRecords(list);
    }
  });

  $('clear').addEventListener('click', () => {
    records = [];
    held = [];
    if (paused) pauseButton.textContent = 'Resume';
    drawFeed();
  });

  $('filter-ns').addEventListener('change', drawFeed);
  $('filter-event').addEventListener('input', drawFeed);
})();
