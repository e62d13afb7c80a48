// The audit viewer's page, script and style: static text served by web/routes.ts. The page holds no
// data; the script asks the JSON API with the admin token the reader types in (kept in this tab's
// sessionStorage only), and writes every value with textContent, never as HTML. Terminal recordings
// are handed to asciinema-player (AsciinemaPlayer, served from the installed package by routes.ts) as
// data, after checking each stored one's SHA-256 against its transcript event.

export const VIEWER_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hoop audit</title>
<link rel="stylesheet" href="/ui/vendor/asciinema-player.css">
<link rel="stylesheet" href="/ui/app.css">
<script src="/ui/vendor/asciinema-player.min.js" defer></script>
<script src="/ui/app.js" defer></script>
</head>
<body>
<header><h1>hoop audit</h1><span id="who"></span><button id="logout" hidden>Forget token</button></header>
<main>
<section id="login" hidden>
  <h2>Admin token</h2>
  <p>The viewer reads the broker's API with an admin token (config <code>admin.tokens</code>). It stays in this tab.</p>
  <form id="login-form"><input id="token" type="password" autocomplete="off" placeholder="admin token" required>
  <button id="login-button" type="submit">Open</button></form>
  <p id="login-error" class="error"></p>
</section>
<section id="sessions" hidden>
  <h2>Sessions</h2>
  <div class="filters">
    <label>State <select id="filter-state"><option value="">any</option><option>active</option><option>revoked</option><option>expired</option></select></label>
    <label>Search <input id="filter-text" placeholder="repository, policy, actor, run, id"></label>
    <span id="count"></span>
  </div>
  <table id="sessions-table"><thead><tr><th>Session</th><th>State</th><th>Policy</th><th>Repository</th><th>Run</th><th>Actor</th><th>Created</th></tr></thead><tbody></tbody></table>
</section>
<section id="session" hidden>
  <p><a href="#/">← all sessions</a></p>
  <h2 id="session-title"></h2>
  <dl id="session-identity"></dl>
  <p id="chain" class="chain"></p>
  <p id="summary"></p>
  <div id="recordings" hidden><h3>Recordings</h3><div id="recordings-list"></div></div>
  <table id="events-table"><thead><tr><th>#</th><th>Time (UTC)</th><th>Target</th><th>Kind</th><th>Decision</th><th>Operation</th><th>Rows</th><th>Masked</th><th>Reasons</th></tr></thead><tbody></tbody></table>
</section>
</main>
</body>
</html>
`;

export const VIEWER_CSS = `
:root { font-family: system-ui, sans-serif; font-size: 14px; color: #1b1f24; background: #fff; }
header { display: flex; gap: 1rem; align-items: center; padding: .5rem 1rem; background: #24292f; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; }
#who { flex: 1; opacity: .8; }
main { padding: 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }
th { background: #f6f8fa; }
tbody tr.clickable { cursor: pointer; }
tbody tr.clickable:hover { background: #eef4ff; }
tr.deny { background: #ffd7d5; }
tr.hold { background: #fff1c2; }
tr.approval { background: #dafbe1; }
tr.lost { background: #e6e0ff; }
td code, .op { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
.state-active { color: #1a7f37; font-weight: 600; }
.state-revoked { color: #9a6700; }
.state-expired { color: #57606a; }
.chain { padding: .4rem .6rem; display: inline-block; border-radius: 4px; }
.chain.ok { background: #dafbe1; color: #116329; }
.chain.broken { background: #ffd7d5; color: #82071e; font-weight: 600; }
.filters { display: flex; gap: 1rem; align-items: center; margin-bottom: .5rem; }
.error { color: #82071e; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { color: #57606a; }
#recordings { margin: 1rem 0; }
.recording { margin-bottom: 1rem; max-width: 900px; }
.recording h4 { margin: .3rem 0; font-weight: 600; }
.recording .sum { font-family: ui-monospace, monospace; font-size: 12px; }
.recording .sum.ok { color: #116329; }
.recording .sum.bad { color: #82071e; font-weight: 600; }
`;

export const VIEWER_JS = `'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const KEY = 'hoop-admin-token';
  let all = [];

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function show(id) {
    for (const s of ['login', 'sessions', 'session']) $(s).hidden = s !== id;
    $('logout').hidden = id === 'login';
  }
  async function api(path) {
    const token = sessionStorage.getItem(KEY);
    const res = await fetch(path, { headers: { authorization: 'Bearer ' + token } });
    if (res.status === 401) {
      sessionStorage.removeItem(KEY);
      $('login-error').textContent = 'The broker refused this token.';
      show('login');
      throw new Error('unauthorized');
    }
    if (!res.ok) throw new Error(path + ': HTTP ' + res.status);
    return res.json();
  }
  function opText(ev) {
    const op = ev.operation || {};
    if (typeof op.statement === 'string' && op.statement) return op.statement;
    if (ev.kind === 'session.opened') return 'policy ' + op.policy;
    if (ev.kind === 'session.revoked') return 'by ' + op.by + (op.reason ? ' (' + op.reason + ')' : '');
    const parts = [];
    for (const k of Object.keys(op).sort()) {
      const v = op[k];
      if (v === null || typeof v === 'object') continue;
      parts.push(k + '=' + v);
    }
    return parts.join(' ');
  }
  function renderSessions() {
    const state = $('filter-state').value;
    const q = $('filter-text').value.trim().toLowerCase();
    const rows = all.filter((s) => {
      if (state && s.state !== state) return false;
      if (!q) return true;
      const id = s.identity || {};
      return [s.id, s.policy, id.repository, id.actor, id.run_id, id.workflow].some((v) => v !== undefined && String(v).toLowerCase().includes(q));
    });
    const body = $('sessions-table').tBodies[0];
    body.replaceChildren();
    for (const s of rows) {
      const id = s.identity || {};
      const tr = el('tr', undefined, 'clickable');
      tr.dataset.id = s.id;
      tr.append(el('td', s.id), el('td', s.state, 'state-' + s.state), el('td', s.policy), el('td', id.repository ?? '—'),
        el('td', id.run_id ?? '—'), el('td', id.actor ?? '—'), el('td', s.created_at.replace('T', ' ').slice(0, 19)));
      tr.addEventListener('click', () => { location.hash = '#/session/' + encodeURIComponent(s.id); });
      body.append(tr);
    }
    $('count').textContent = rows.length + ' of ' + all.length;
  }
  async function loadSessions() {
    show('sessions');
    all = (await api('/v1/sessions?limit=1000')).sessions;
    renderSessions();
  }
  async function loadSession(id) {
    show('session');
    const [s, t] = await Promise.all([api('/v1/sessions/' + encodeURIComponent(id)), api('/v1/sessions/' + encodeURIComponent(id) + '/transcript')]);
    $('session-title').textContent = 'Session ' + s.id + ' — ' + s.state;
    const dl = $('session-identity');
    dl.replaceChildren();
    const facts = { policy: s.policy, issuer: s.issuer, created: s.created_at, expires: s.expires_at, ended: s.ended_at ?? '—' };
    for (const k of ['repository', 'workflow', 'run_id', 'run_attempt', 'actor', 'event_name', 'ref', 'sha', 'environment'])
      if (s.identity && s.identity[k] !== undefined) facts[k] = s.identity[k];
    for (const [k, v] of Object.entries(facts)) dl.append(el('dt', k), el('dd', v));
    const chain = $('chain');
    chain.className = 'chain ' + (t.chain_verified ? 'ok' : 'broken');
    chain.textContent = (t.chain_verified ? '✓ hash chain verified' : '✗ hash chain does NOT verify') + ' · head ' + (t.head_hash || '—');
    const denied = t.events.filter((e) => e.decision === 'deny').length;
    const held = t.events.filter((e) => e.decision === 'hold').length;
    $('summary').textContent = t.events.length + ' events · ' + denied + ' denied · ' + held + ' held';
    const body = $('events-table').tBodies[0];
    body.replaceChildren();
    for (const ev of t.events) {
      const cls = ev.decision === 'deny' ? 'deny' : ev.decision === 'hold' ? 'hold' : ev.approval ? 'approval' : /\\.connection\\.lost$/.test(ev.kind) ? 'lost' : '';
      const tr = el('tr', undefined, cls);
      const op = el('td', undefined);
      op.append(el('span', opText(ev), 'op'));
      tr.append(el('td', ev.seq), el('td', ev.at.slice(11, 23)), el('td', ev.target ?? ''), el('td', ev.kind), el('td', ev.decision), op,
        el('td', ev.rows ?? ''), el('td', ev.masked ?? ''), el('td', (ev.reasons || []).join('; ')));
      body.append(tr);
    }
    await loadRecordings(s.id, t.events);
  }
  async function sha256Hex(text) {
    const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
    return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
  }
  let players = [];
  // SSH shells and commands (their recordings beside the transcript, each named and hashed by its event)
  // and Kubernetes exec/attach (the asciicast in the event itself), replayed with asciinema-player.
  async function loadRecordings(id, events) {
    const box = $('recordings');
    const list = $('recordings-list');
    for (const p of players) p.dispose();
    players = [];
    list.replaceChildren();
    const found = [];
    for (const ev of events) {
      const op = ev.operation || {};
      if (op.recording && typeof op.recording.id === 'string') found.push({ ev, ref: op.recording });
      else if (typeof op.asciicast === 'string' && op.asciicast) found.push({ ev, cast: op.asciicast });
    }
    box.hidden = found.length === 0;
    if (found.length === 0) return;
    let stored = new Map();
    if (found.some((f) => f.ref)) {
      const r = await api('/v1/sessions/' + encodeURIComponent(id) + '/recordings');
      stored = new Map(r.recordings.map((x) => [x.id, x.cast]));
    }
    for (const f of found) {
      const op = f.ev.operation;
      const div = el('div', undefined, 'recording');
      div.dataset.seq = String(f.ev.seq);
      const what = op.command ? (Array.isArray(op.command) ? op.command.join(' ') : op.command) : (op.term ? 'shell (' + op.term + ')' : f.ev.kind);
      div.append(el('h4', '#' + f.ev.seq + ' ' + f.ev.kind + ' · ' + (f.ev.target ?? '') + ' · ' + what));
      const cast = f.ref ? stored.get(f.ref.id) : f.cast;
      const sum = el('p', '', 'sum');
      const screen = el('div', undefined, 'screen');
      div.append(sum, screen);
      list.append(div);
      if (cast === undefined) {
        sum.textContent = '✗ recording ' + f.ref.id + ' is missing from the store';
        sum.className = 'sum bad';
        continue;
      }
      if (f.ref) {
        const hex = await sha256Hex(cast);
        const ok = hex === f.ref.sha256;
        sum.textContent = (ok ? '✓ sha256 matches the transcript: ' : '✗ sha256 does NOT match the transcript: ') + hex + (f.ref.truncated ? ' (truncated)' : '');
        sum.className = 'sum ' + (ok ? 'ok' : 'bad');
      } else {
        sum.textContent = 'recorded in the transcript event' + (op.asciicast_truncated ? ' (truncated)' : '');
      }
      players.push(AsciinemaPlayer.create({ data: cast }, screen, { fit: 'width', idleTimeLimit: 2, poster: 'npt:9999' }));
    }
  }
  async function route() {
    if (!sessionStorage.getItem(KEY)) return show('login');
    const m = /^#\\/session\\/(.+)$/.exec(location.hash);
    try {
      if (m) await loadSession(decodeURIComponent(m[1]));
      else await loadSessions();
    } catch (err) {
      if (String(err.message) !== 'unauthorized') $('login-error').textContent = String(err.message);
    }
  }
  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY, $('token').value);
      $('token').value = '';
      $('login-error').textContent = '';
      route();
    });
    $('logout').addEventListener('click', () => { sessionStorage.removeItem(KEY); show('login'); });
    $('filter-state').addEventListener('change', renderSessions);
    $('filter-text').addEventListener('input', renderSessions);
    window.addEventListener('hashchange', route);
    route();
  });
})();
`;
