// The lab console's page: draws the live state the server streams
// (/api/events), and turns the controls into the console's few POSTs.
// Everything shown is set as text, never as HTML: log lines carry what
// clients sent.
'use strict';

const $ = (sel) => document.querySelector(sel);
const SVG = 'http://www.w3.org/2000/svg';
const ROWS_SHOWN = 20;
// The form's keys and their defaults, as the console's server gives them
// (GET /api/fault): the page keeps no list of A's keys of its own.
let formFields = [];
let formDefaults = {};

// A POST with its values in the query (the console reads no bodies).
async function post(path, params) {
  const query = new URLSearchParams(params || {}).toString();
  const res = await fetch(path + (query ? '?' + query : ''), { method: 'POST' });
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new Error(body.error || String(res.status));
  return body;
}

function el(tag, attrs, text) {
  const e = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- the fault form

async function loadForm() {
  const res = await fetch('/api/fault');
  if (!res.ok) return;
  const { file, fields, values, defaults } = await res.json();
  formFields = fields;
  formDefaults = defaults;
  $('#fault-file').textContent = file;
  for (const key of formFields) {
    const input = $('#' + key);
    if (input.type === 'checkbox') input.checked = !!values[key];
    else input.value = values[key];
  }
}

function formValues() {
  const out = {};
  for (const key of formFields) {
    const input = $('#' + key);
    out[key] = input.type === 'checkbox' ? String(input.checked) : input.value;
  }
  return out;
}

async function apply(values) {
  const said = $('#fault-said');
  said.className = 'said';
  said.textContent = 'saving…';
  try {
    const { file, section } = await post('/api/fault', values);
    said.textContent = 'saved ' + file + '; waiting for A to reload it…';
    $('#section').textContent = section;
    awaitingReload = true;
  } catch (e) {
    said.className = 'said error';
    said.textContent = e.message;
  }
}

let awaitingReload = false;
let lastConfigEvent = null;

// ---- the services, the traffic

async function life(e) {
  const { name, action } = e.target.dataset;
  try { await post('/api/service', { name, action }); } catch (err) { $('#answer').textContent = err.message; }
}

async function oneCall() {
  const box = $('#answer');
  box.textContent = 'calling B…';
  try {
    const a = await post('/api/call');
    box.textContent = `B answered ${a.status || 'nothing'}: ${a.kind} in ${a.latency_ms} ms` +
      (a.detail ? `\n${a.detail}` : '') +
      `\n\nB | ${a.b_line || '(no line from B)'}\nA | ${a.a_line || '(no line from A for this trace)'}`;
  } catch (e) {
    box.textContent = e.message;
  }
}

async function setLoad() {
  const rate = $('#load').checked ? Number($('#rate').value) || 0 : 0;
  try { await post('/api/load', { rate }); } catch (e) { $('#answer').textContent = e.message; }
}

// ---- drawing

function colourOf(kinds, name) {
  const k = kinds.find((k) => k.name === name);
  return k ? k.colour : '#000000';
}

// Outcomes per second, stacked by KIND in the experiment's order.
function drawTimeline(svg, seconds, kinds) {
  svg.replaceChildren();
  const W = 640, H = 190, L = 34, B = 18, T = 8;
  const totals = seconds.map((s) => Object.values(s.counts).reduce((a, b) => a + b, 0));
  const top = Math.max(1, ...totals);
  const bw = (W - L - 4) / seconds.length;
  const y = (v) => H - B - (v / top) * (H - B - T);
  axis(svg, W, H, L, B, T, top, '/s');
  seconds.forEach((s, i) => {
    let below = 0;
    for (const k of kinds) {
      const n = s.counts[k.name] || 0;
      if (!n) continue;
      svg.append(el('svg:rect', {
        x: L + i * bw, y: y(below + n), width: Math.max(1, bw * 0.85), height: y(below) - y(below + n),
        fill: k.colour, 'data-kind': k.name,
      }));
      below += n;
    }
    // Kinds B may add later, not in the experiment's list: black.
    for (const [name, n] of Object.entries(s.counts)) {
      if (kinds.some((k) => k.name === name)) continue;
      svg.append(el('svg:rect', { x: L + i * bw, y: y(below + n), width: bw * 0.85, height: y(below) - y(below + n), fill: '#000' }));
      below += n;
    }
  });
  svg.append(el('svg:text', { x: L, y: H - 4 }, '−60 s'));
  svg.append(el('svg:text', { x: W - 30, y: H - 4 }, 'now'));
}

function axis(svg, W, H, L, B, T, top, unit) {
  svg.append(el('svg:line', { x1: L, y1: H - B, x2: W - 2, y2: H - B, stroke: '#999' }));
  svg.append(el('svg:line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#999' }));
  svg.append(el('svg:text', { x: 2, y: T + 8 }, `${Math.round(top)}${unit}`));
  svg.append(el('svg:text', { x: 2, y: H - B }, '0'));
}

// p50 and p99 per second, with B's deadline as a line.
function drawLatency(svg, seconds, deadline) {
  svg.replaceChildren();
  const W = 640, H = 190, L = 34, B = 18, T = 8;
  const highest = Math.max(deadline, ...seconds.map((s) => s.p99 || 0));
  const top = highest * 1.25;
  const step = (W - L - 4) / seconds.length;
  const x = (i) => L + (i + 0.5) * step;
  const y = (v) => H - B - (v / top) * (H - B - T);
  axis(svg, W, H, L, B, T, top, ' ms');
  svg.append(el('svg:line', { x1: L, y1: y(deadline), x2: W - 2, y2: y(deadline), stroke: '#d62728', 'stroke-dasharray': '5 3' }));
  svg.append(el('svg:text', { x: L + 4, y: y(deadline) - 3 }, `B's deadline (${deadline} ms)`));
  for (const [key, colour] of [['p50', '#1f77b4'], ['p99', '#ff7f0e']]) {
    // Seconds without calls are gaps, not zeros.
    let path = '';
    let pen = 'M';
    seconds.forEach((s, i) => {
      if (s[key] === null || s[key] === undefined) { pen = 'M'; return; }
      path += `${pen}${x(i).toFixed(1)},${y(s[key]).toFixed(1)} `;
      pen = 'L';
    });
    if (path) svg.append(el('svg:path', { d: path, stroke: colour, fill: 'none', 'stroke-width': 2 }));
  }
}

function drawRows(tbody, rows, kinds) {
  tbody.replaceChildren();
  for (const r of rows.slice(0, ROWS_SHOWN)) {
    const tr = el('tr', { 'data-kind': r.kind, 'data-trace': r.trace_id });
    tr.append(el('td', {}, r.clock));
    const chip = el('span', { class: 'chip' }, r.kind);
    chip.style.background = colourOf(kinds, r.kind);
    const kind = el('td');
    kind.append(chip);
    tr.append(kind);
    tr.append(el('td', {}, r.latency_ms === null ? '' : String(r.latency_ms)));
    tr.append(el('td', { title: r.detail }, r.detail));
    tr.append(el('td', { title: r.a_line || '' }, r.a_line || ''));
    tbody.append(tr);
  }
}

function drawEvents(ul, events) {
  ul.replaceChildren(...events.map((e) => el('li', { class: e.event }, e.text)));
}

function drawLife(who, life) {
  const state = $(`#${who}-state`);
  state.textContent = life.state;
  state.className = 'state ' + life.state;
  $(`#${who}-exit`).textContent = life.last_exit ? `last exit: ${life.last_exit}` : '';
}

function legend(kinds, seconds) {
  const seen = new Set(seconds.flatMap((s) => Object.keys(s.counts)));
  const box = $('#legend');
  box.replaceChildren();
  for (const k of kinds.filter((k) => seen.has(k.name))) {
    const chip = el('span', { class: 'chip' }, k.name);
    chip.style.background = k.colour;
    box.append(chip);
  }
}

function draw(state) {
  const { live, kinds, deadline_ms, rate } = state;
  drawTimeline($('#timeline'), live.seconds, kinds);
  drawLatency($('#latency'), live.seconds, deadline_ms);
  legend(kinds, live.seconds);
  drawRows($('#rows tbody'), live.rows, kinds);
  drawEvents($('#a-config'), live.a_config);
  drawEvents($('#lab'), live.lab);
  drawLife('a', live.a);
  drawLife('b', live.b);
  if (document.activeElement !== $('#load')) $('#load').checked = rate > 0;
  // A's answer to the last save: reloaded, or why not.
  const newest = live.a_config[0];
  const key = newest ? `${newest.t} ${newest.event} ${newest.text}` : null;
  if (awaitingReload && newest && key !== lastConfigEvent) {
    const said = $('#fault-said');
    said.className = 'said ' + (newest.event === 'config_error' ? 'error' : '');
    said.textContent = `A: ${newest.event}: ${newest.text}`;
    awaitingReload = false;
  }
  lastConfigEvent = key;
}

// ---- wiring

function connect() {
  const link = $('#link');
  const events = new EventSource('/api/events');
  events.onopen = () => { link.textContent = 'live'; link.className = 'link'; };
  events.onmessage = (m) => draw(JSON.parse(m.data));
  // EventSource reconnects by itself; say so meanwhile.
  events.onerror = () => { link.textContent = 'reconnecting… (is cargo lab up still running?)'; link.className = 'link down'; };
}

document.addEventListener('DOMContentLoaded', () => {
  $('#fault').addEventListener('submit', (e) => { e.preventDefault(); apply(formValues()); });
  $('#clear').addEventListener('click', () => {
    // The shipped file's defaults: every fault off.
    for (const k of formFields) {
      const input = $('#' + k);
      if (input.type === 'checkbox') input.checked = !!formDefaults[k];
      else input.value = formDefaults[k];
    }
    apply(formValues());
  });
  for (const b of document.querySelectorAll('.life button')) b.addEventListener('click', life);
  $('#call').addEventListener('click', oneCall);
  $('#load').addEventListener('change', setLoad);
  $('#rate').addEventListener('change', () => { if ($('#load').checked) setLoad(); });
  loadForm();
  connect();
});
