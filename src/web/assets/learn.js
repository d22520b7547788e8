'use strict';
// The /learn stepper: plays one scenario a step at a time through the hub's
// session API (POST /learn/{slug}/session, POST /learn/session/{id}/step,
// DELETE /learn/session/{id}) and draws each step report. Every string from
// the scenario or the hub reaches the page through textContent
// (ParcelHub.el); the learner's predictions never leave the page.
(() => {
  const { el } = window.ParcelHub;
  const $ = (id) => document.getElementById(id);
  const stepper = $('stepper');
  const slug = stepper.dataset.slug;
  const total = Number(stepper.dataset.steps);
  const hubState = $('hub-state');
  const PAYLOAD_CHARS = 120; // activity payloads are cut to this many characters

  let session = null; // id of the open session; none until the first run
  let nextToRun = 1; // the first step not run yet
  let reports = []; // by step number - 1
  let busy = false;

  // Progress (session, reports, predictions) is kept for this tab, so a
  // learner who follows a link or goes Back and returns finds the lesson
  // where it was, on the same hub while its session lives.
  const STORE_KEY = `parcel-hub:learn:${slug}`;

  const section = (n) => $(`step-${n}`);
  const listItem = (n) => document.querySelector(`#step-list li[data-step="${n}"]`);

  function showHub(state, text) {
    hubState.dataset.state = state;
    hubState.textContent = text;
  }

  /** A JSON request; always resolves to an envelope with the HTTP status added. */
  async function api(method, path, keepalive = false) {
    let response;
    try {
      response = await fetch(path, { method, keepalive, headers: { accept: 'application/json' } });
    } catch {
      return { ok: false, status: 0, error: { code: 'network', message: 'the hub did not answer; is it still running?' } };
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (body && typeof body === 'object') return { ...body, status: response.status };
    return { ok: false, status: response.status, error: { code: 'http', message: `the hub answered ${response.status}` } };
  }

  /** Shows step `n`, or the summary for 'summary'. */
  function show(n) {
    for (let i = 1; i <= total; i += 1) section(i).hidden = i !== n;
    $('summary').hidden = n !== 'summary';
    for (const li of document.querySelectorAll('#step-list li')) {
      if (Number(li.dataset.step) === n) li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
    }
    const heading = (n === 'summary' ? $('summary') : section(n)).querySelector('h2');
    heading.focus();
  }

  function refreshList() {
    for (let i = 1; i <= total; i += 1) {
      const li = listItem(i);
      const report = reports[i - 1];
      li.dataset.result = report ? (report.passed ? 'pass' : 'fail') : 'pending';
      li.querySelector('.step-link').disabled = i > nextToRun;
    }
  }

  // ---- drawing a report ----

  /** An ack's point in words: ok or the error code and message, duplicate, the order. */
  function ackLine(ack) {
    if (!ack || typeof ack !== 'object') return brief(ack, 160);
    if (ack.ok === false && ack.error) return `error ${ack.error.code}: ${ack.error.message}`;
    const parts = ['ok'];
    if ('duplicate' in ack) parts.push(`duplicate: ${ack.duplicate}`);
    if ('removed' in ack) parts.push(`removed: ${ack.removed}`);
    if (ack.order && ack.order.orderId) parts.push(`order ${ack.order.orderId} (${ack.order.status})`);
    if (Array.isArray(ack.messages)) parts.push(`${ack.messages.length} queued message${ack.messages.length === 1 ? '' : 's'} listed`);
    if (Array.isArray(ack.history)) parts.push(`${ack.history.length} message${ack.history.length === 1 ? '' : 's'} in its history`);
    for (const key of ['room', 'members', 'offset', 'stores']) if (key in ack) parts.push(`${key}: ${brief(ack[key], 80)}`);
    return parts.join(' · ');
  }

  /** JSON on one line, cut to `max` characters. */
  function brief(value, max) {
    const text = value === undefined ? '' : JSON.stringify(value);
    return text.length > max ? `${text.slice(0, max)}…` : text;
  }

  // The fields a learner looks for, shown first; `at` and ids come last.
  const KEY_FIELDS = ['from', 'text', 'room', 'name', 'users', 'members', 'online', 'offset', 'store', 'orderId', 'customer', 'status', 'duplicate', 'removed'];
  const NOISE = ['at', 'messageId', 'event'];

  /** The key fields of a payload as one line: an envelope by its order. */
  function keyLine(payload) {
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return brief(payload, 160);
    const parts = [];
    const order = payload.order;
    if (order && typeof order === 'object' && order.orderId) parts.push(`order ${order.orderId}${order.status ? ` (${order.status})` : ''}`);
    const skip = parts.length > 0 ? ['order', 'orderId', 'status'] : [];
    const shown = (key) => !NOISE.includes(key) && !skip.includes(key);
    for (const key of KEY_FIELDS) if (key in payload && shown(key)) parts.push(`${key}: ${brief(payload[key], 80)}`);
    for (const key of Object.keys(payload)) if (!KEY_FIELDS.includes(key) && shown(key)) parts.push(`${key}: ${brief(payload[key], 60)}`);
    return parts.join(' · ') || brief(payload, 160);
  }

  /** A payload: its key fields, and the whole JSON one click away. */
  function payloadBlock(value) {
    return el(
      'div',
      { className: 'payload-view' },
      el('span', { className: 'key-fields', text: keyLine(value) }),
      el('details', { className: 'payload json' }, el('summary', { text: 'full payload' }), el('pre', { text: JSON.stringify(value, null, 2) })),
    );
  }

  /** A value as a one-line summary that opens to the whole JSON. */
  function jsonBlock(value) {
    return el(
      'details',
      { className: 'payload json' },
      el('summary', { text: brief(value, 400) }),
      el('pre', { text: JSON.stringify(value, null, 2) }),
    );
  }

  function actorPane(actor) {
    const pane = el(
      'section',
      {
        className: `actor${actor.connected ? '' : ' offline'}`,
        attrs: { 'data-actor': actor.actor, 'data-connected': actor.connected, 'data-count': actor.received.length },
        title: `${actor.actor} on ${actor.namespace}`,
      },
      el(
        'header',
        { className: 'actor-head' },
        el('strong', { text: actor.actor }),
        el('code', { text: actor.namespace }),
        actor.connected ? null : el('span', { className: 'tag offline', text: 'offline' }),
      ),
    );
    const listed = actor.listed || [];
    if (actor.received.length === 0 && listed.length === 0) {
      pane.append(el('p', { className: 'nothing', text: 'nothing' }));
    }
    if (actor.received.length > 0) {
      pane.append(
        el(
          'ul',
          { className: 'received' },
          ...actor.received.map((got) =>
            el('li', { attrs: { 'data-event': got.event } }, el('span', { className: 'event', text: got.event }), payloadBlock(got.payload)),
          ),
        ),
      );
    }
    if (listed.length > 0) {
      // Not pushed: what its getAll answered, still queued for it.
      pane.append(
        el('p', { className: 'listed-head', text: 'listed by its getAll (queued, not pushed)' }),
        el(
          'ul',
          { className: 'received listed' },
          ...listed.map((got) =>
            el('li', { attrs: { 'data-event': got.event } }, el('span', { className: 'event', text: got.event }), payloadBlock(got.payload)),
          ),
        ),
      );
    }
    return pane;
  }

  function checkList(checks) {
    if (checks.length === 0) return el('p', { className: 'empty', text: 'This step checks nothing: it sets the stage.' });
    return el(
      'ul',
      { className: 'checks' },
      ...checks.map((c) =>
        el(
          'li',
          { className: `check ${c.passed ? 'pass' : 'fail'}`, attrs: { 'data-passed': c.passed } },
          el('span', { className: 'check-mark', text: c.passed ? '✔' : '✘', attrs: { 'aria-label': c.passed ? 'passed' : 'failed' } }),
          el(
            'span',
            { className: 'check-text' },
            el('span', { text: c.expected }),
            c.detail ? el('span', { className: 'check-detail', text: c.detail }) : null,
          ),
        ),
      ),
    );
  }

  function activityRow(r) {
    const incoming = r.direction === 'in';
    const outcome = r.outcome || '';
    return el(
      'tr',
      { attrs: { 'data-event': r.event, 'data-ns': r.namespace, 'data-direction': r.direction } },
      el('td', {}, el('code', { text: r.namespace })),
      el('td', { className: incoming ? 'dir-in' : 'dir-out', text: incoming ? '→ in' : '← out', attrs: { title: incoming ? 'to the hub' : 'from the hub' } }),
      el('td', {}, el('strong', { text: r.event })),
      el('td', { text: incoming ? r.identity || r.socket || '' : r.target || '' }),
      el('td', { className: 'num', text: r.recipients === undefined || r.recipients === null ? '' : r.recipients }),
      el(
        'td',
        { className: outcome === 'ok' ? 'outcome-ok' : 'outcome-bad' },
        outcome,
        // Why the hub refused: the sentence the client got.
        r.reason ? el('span', { className: 'reason', text: r.reason }) : null,
      ),
      el('td', { className: 'mono cut', text: brief(r.payload, PAYLOAD_CHARS) }),
    );
  }

  function activityBlock(records) {
    const head = el('h3', {}, "The hub's activity (as the inspector shows it) ", el('span', { className: 'count', text: records.length }));
    if (records.length === 0) {
      return el('div', { className: 'activity-block' }, head, el('p', { className: 'empty', text: 'The hub recorded nothing in this step.' }));
    }
    const header = ['namespace', '', 'event', 'who / target', 'reached', 'outcome', 'payload'].map((h) =>
      el('th', { className: h === 'reached' ? 'num' : '', text: h }),
    );
    return el(
      'div',
      { className: 'activity-block' },
      head,
      el(
        'div',
        { className: 'table-wrap' },
        el('table', { className: 'activity' }, el('thead', {}, el('tr', {}, ...header)), el('tbody', {}, ...records.map(activityRow))),
      ),
    );
  }

  function drawReport(box, report) {
    const parts = [el('p', { className: 'action-line' }, el('span', { className: 'label', text: 'Action' }), el('code', { text: report.action }))];
    if (report.error) parts.push(el('p', { className: 'error', text: `The action failed: ${report.error}` }));
    if (report.ack !== null && report.ack !== undefined) {
      parts.push(
        el(
          'div',
          { className: 'answer', attrs: { 'data-kind': 'ack' } },
          el('span', { className: 'label', text: 'ack' }),
          el('div', { className: 'answer-body' }, el('span', { className: 'key-fields', text: ackLine(report.ack) }), jsonBlock(report.ack)),
        ),
      );
    }
    if (report.connectError) {
      parts.push(
        el('div', { className: 'answer refused', attrs: { 'data-kind': 'connect_error' } }, el('span', { className: 'label', text: 'connect_error' }), el('code', { text: report.connectError })),
      );
    }
    parts.push(el('h3', { text: 'What each actor received in this step' }));
    parts.push(el('div', { className: 'actors' }, ...report.actors.map(actorPane)));
    parts.push(el('h3', { text: 'Checks' }));
    parts.push(checkList(report.checks));
    if (report.explain) parts.push(el('div', { className: 'why' }, el('h3', { text: 'Why' }), el('p', { text: report.explain })));
    parts.push(activityBlock(report.activity || []));
    box.replaceChildren(...parts);
    box.hidden = false;
  }

  // ---- keeping progress ----

  function predictionOf(n) {
    const textarea = section(n).querySelector('.prediction');
    return textarea ? textarea.value.trim() : '';
  }

  function inProgress() {
    return session !== null && nextToRun > 1 && nextToRun <= total;
  }

  function save() {
    const predictions = {};
    for (let i = 1; i <= total; i += 1) predictions[i] = predictionOf(i);
    try {
      sessionStorage.setItem(STORE_KEY, JSON.stringify({ session, nextToRun, reports, predictions }));
    } catch {
      // Storage off or full: the lesson still plays, it is just not kept.
    }
    $('leave-note').hidden = !inProgress();
  }

  function forget() {
    try {
      sessionStorage.removeItem(STORE_KEY);
    } catch {
      // Nothing was kept.
    }
    $('leave-note').hidden = true;
  }

  /** Draws step `n` as run, with its report. */
  function drawStep(n, report) {
    const card = section(n);
    const textarea = card.querySelector('.prediction');
    if (textarea) textarea.readOnly = true;
    drawReport(card.querySelector('.report'), report);
    const verdict = card.querySelector('.verdict');
    // The scenario's own checks, not a grade of the learner's prediction.
    verdict.textContent = report.passed ? (report.checks.length > 0 ? 'checks passed' : 'done') : 'a check failed';
    verdict.className = `verdict ${report.passed ? 'pass' : 'fail'}`;
    verdict.hidden = false;
    card.querySelector('.run').hidden = true;
    card.querySelector('.after').hidden = false;
  }

  /** Puts back what this tab kept of the lesson, if anything. */
  function restore() {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null');
    } catch {
      saved = null;
    }
    if (!saved || typeof saved !== 'object') return;
    for (let i = 1; i <= total; i += 1) {
      const textarea = section(i).querySelector('.prediction');
      if (textarea && saved.predictions && typeof saved.predictions[i] === 'string') textarea.value = saved.predictions[i];
    }
    if (!Array.isArray(saved.reports) || saved.reports.length === 0) return;
    session = typeof saved.session === 'string' ? saved.session : null;
    reports = saved.reports.slice(0, total);
    nextToRun = Math.min(reports.length + 1, total + 1);
    reports.forEach((report, i) => drawStep(i + 1, report));
    refreshList();
    $('restart').disabled = false;
    const left = total - reports.length;
    if (left === 0) showHub('idle', 'done · hub stopped');
    else showHub('connected', `resumed · ${left} step${left === 1 ? '' : 's'} left`);
    $('resumed').hidden = false;
    $('leave-note').hidden = !inProgress();
    if (left === 0) showSummary();
    else show(nextToRun);
  }

  // ---- playing ----

  function fail(node, message) {
    node.textContent = message;
    node.hidden = false;
  }

  async function run(n) {
    if (busy || n !== nextToRun) return;
    busy = true;
    const card = section(n);
    const button = card.querySelector('.run');
    const error = card.querySelector('.step-error');
    const spinner = card.querySelector('.busy');
    button.disabled = true;
    spinner.hidden = false;
    error.hidden = true;
    try {
      if (!session && n > 1) {
        // The hub of the steps already run was closed (the page was left and restored).
        showHub('error', 'hub closed');
        fail(error, "This lesson's hub was closed when you left the page. Start over to play it again.");
        return;
      }
      if (!session) {
        showHub('connecting', 'starting a private hub…');
        const started = await api('POST', `/learn/${encodeURIComponent(slug)}/session`);
        if (!started.ok) {
          showHub('error', 'no hub');
          button.disabled = false;
          fail(error, `The lesson could not start: ${started.error.message}`);
          return;
        }
        session = started.session;
        $('restart').disabled = false;
      }
      showHub('connecting', `running step ${n}…`);
      const report = await api('POST', `/learn/session/${encodeURIComponent(session)}/step`);
      if (!report.ok) {
        if (report.status === 404 || report.status === 409) {
          // The session is gone (idle too long, or evicted): its hub's state is lost.
          session = null;
          showHub('error', 'hub closed');
          fail(error, `${report.error.message} (Start over to play the lesson again on a fresh hub.)`);
        } else {
          showHub('error', 'step failed');
          button.disabled = false;
          fail(error, `The step could not run: ${report.error.message}`);
        }
        return;
      }
      // The prediction stays on screen, above what really happened, to compare.
      reports[n - 1] = report;
      nextToRun = n + 1;
      drawStep(n, report);
      refreshList();
      save();
      if (report.stepsLeft === 0) showHub('idle', 'done · hub stopped');
      else showHub('connected', `hub running · ${report.stepsLeft} step${report.stepsLeft === 1 ? '' : 's'} left`);
      card.querySelector('.after button').focus();
    } finally {
      busy = false;
      spinner.hidden = true;
    }
  }

  function showSummary() {
    const done = reports.filter(Boolean);
    const passedSteps = done.filter((r) => r.passed).length;
    const checks = done.reduce((sum, r) => sum + r.checks.length, 0);
    const passedChecks = done.reduce((sum, r) => sum + r.checks.filter((c) => c.passed).length, 0);
    const line = $('summary-line');
    line.className = `summary-line ${passedSteps === total ? 'pass' : 'fail'}`;
    line.textContent =
      passedSteps === total
        ? `All ${total} steps ran and their checks passed: ${passedChecks} of ${checks}. Compare them with your predictions below.`
        : `${passedSteps} of ${total} steps passed their checks; ${checks - passedChecks} of ${checks} checks failed.`;
    $('summary-steps').replaceChildren(
      ...done.map((r) => {
        const predicted = predictionOf(r.number);
        const outcome = r.checks.length > 0 ? r.checks.map((c) => `${c.passed ? '✔' : '✘'} ${c.expected}`).join('; ') : 'no check: it set the stage';
        return el(
          'li',
          { className: r.passed ? 'pass' : 'fail', attrs: { 'data-step': r.number } },
          el('span', { className: 'check-mark', text: r.passed ? '✔' : '✘', attrs: { 'aria-label': r.passed ? 'passed' : 'failed' } }),
          el(
            'span',
            { className: 'summary-body' },
            el('span', {}, el('span', { text: r.say }), ' ', el('code', { text: r.action })),
            r.ask ? el('span', { className: 'summary-ask', text: `? ${r.ask}` }) : null,
            r.ask ? el('span', { className: 'summary-prediction', text: `You predicted: ${predicted || '(nothing written)'}` }) : null,
            el('span', { className: 'summary-outcome', text: `What happened: ${outcome}` }),
            r.explain ? el('span', { className: 'summary-why', text: `Why: ${r.explain}` }) : null,
          ),
        );
      }),
    );
    show('summary');
  }

  async function startOver() {
    if (busy) return;
    busy = true;
    const old = session;
    session = null;
    if (old) {
      showHub('connecting', 'closing the hub…');
      // Already closed is fine: a fresh one starts on the next run either way.
      await api('DELETE', `/learn/session/${encodeURIComponent(old)}`);
    }
    reports = [];
    nextToRun = 1;
    forget();
    $('resumed').hidden = true;
    for (let i = 1; i <= total; i += 1) {
      const card = section(i);
      const box = card.querySelector('.report');
      box.replaceChildren();
      box.hidden = true;
      card.querySelector('.after').hidden = true;
      card.querySelector('.verdict').hidden = true;
      card.querySelector('.step-error').hidden = true;
      const button = card.querySelector('.run');
      button.hidden = false;
      button.disabled = false;
      const textarea = card.querySelector('.prediction');
      if (textarea) {
        textarea.value = '';
        textarea.readOnly = false;
      }
    }
    refreshList();
    $('restart').disabled = true;
    showHub('idle', 'no hub yet');
    busy = false;
    show(1);
  }

  for (let i = 1; i <= total; i += 1) {
    const card = section(i);
    card.querySelector('.run').addEventListener('click', () => run(i));
    card.querySelector('.after button').addEventListener('click', () => (i < total ? show(i + 1) : showSummary()));
    listItem(i)
      .querySelector('.step-link')
      .addEventListener('click', () => show(i));
  }
  $('start-over').addEventListener('click', startOver);
  $('restart').addEventListener('click', startOver);

  for (let i = 1; i <= total; i += 1) {
    const textarea = section(i).querySelector('.prediction');
    if (textarea) textarea.addEventListener('input', save);
  }

  // Leaving mid-lesson asks first; the progress is kept for this tab
  // either way (and the lesson's hub lives on until its session idles out).
  window.addEventListener('beforeunload', (event) => {
    if (!inProgress()) return;
    save();
    event.preventDefault();
    event.returnValue = '';
  });

  // Back from the browser's page cache: the page is as it was; say so.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted && reports.length > 0) $('resumed').hidden = false;
  });

  restore();
})();
