// The cluster page, `GET /_dashboard` on every node: one self-contained HTML page (inline CSS and JS, no
// build step, no CDN, works offline) that polls this node's own JSON endpoints every 2 s — /_cluster,
// /_stats, /_hotkeys and /metrics — and draws members, ring shares, per-group hit ratios, time series
// (kept in the page, so nothing is stored on the node) and the hottest keys.
//
// Everything from the network (keys above all) reaches the page as text: the script builds the DOM with
// createElement/textContent and never parses markup. The Content-Security-Policy admits only this page's
// own script and style (by hash) and fetches to this origin, so even a mistake there could not run an
// injected script.

import { createHash } from 'node:crypto';
import { Ring } from '../ring.js';

/** Keys sampled to estimate each member's share (±1 % at 3 members; ~3 ms, once per ring). */
const SHARE_SAMPLE = 20_000;
let sharesMemo: { checksum: string; shares: Record<string, number> } | undefined;

/**
 * Each member's share of keys on the ring `labels` (fractions summing to 1), measured on a fixed sample of
 * keys, so every node computes the same numbers for the same ring. Memoized for the last ring.
 */
export function ringShares(labels: readonly string[]): Record<string, number> {
  const ring = new Ring({ labels });
  const checksum = ring.checksum();
  if (sharesMemo?.checksum === checksum) return sharesMemo.shares;
  const counts = new Map<string, number>(labels.map((l) => [l, 0]));
  for (let i = 0; i < SHARE_SAMPLE; i++) {
    const owner = ring.owner(`gossipcache-share-${i}`);
    if (owner !== undefined) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  }
  const shares: Record<string, number> = {};
  for (const [label, n] of counts) shares[label] = labels.length === 0 ? 0 : n / SHARE_SAMPLE;
  sharesMemo = { checksum, shares };
  return shares;
}

const STYLE = `
:root { --fg:#1d2330; --muted:#6b7385; --line:#e3e6ec; --bg:#f6f7f9; --card:#fff; --ok:#2e9e5b; --warn:#d08a12; --bad:#d64545; }
* { box-sizing: border-box; }
body { margin:0; font:13px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; gap:18px; align-items:center; padding:8px 16px; background:#1d2330; color:#fff; }
header h1 { font-size:15px; margin:0; font-weight:600; }
header .meta { color:#c9cfdb; }
header .meta b { color:#fff; font-weight:600; }
#status { margin-left:auto; display:flex; align-items:center; gap:6px; }
.dot { width:10px; height:10px; border-radius:50%; background:var(--muted); display:inline-block; }
.dot.ok { background:var(--ok); } .dot.warn { background:var(--warn); } .dot.bad { background:var(--bad); }
main { display:grid; grid-template-columns: minmax(0,1.35fr) minmax(0,1fr); gap:12px; padding:12px 16px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 12px; min-width:0; overflow-x:auto; }
.card h2 { font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); margin:0 0 8px; font-weight:600; }
.wide { grid-column: 1 / -1; }
table { width:100%; border-collapse:collapse; }
th { text-align:left; color:var(--muted); font-weight:500; font-size:12px; padding:3px 6px; border-bottom:1px solid var(--line); }
td { padding:3px 6px; border-bottom:1px solid #f0f1f4; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
td.member { max-width:240px; overflow:hidden; text-overflow:ellipsis; }
td.key { max-width:280px; overflow:hidden; text-overflow:ellipsis; font-family:ui-monospace,Menlo,Consolas,monospace; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; vertical-align:-1px; }
.pill { padding:1px 7px; border-radius:9px; font-size:11px; font-weight:600; color:#fff; background:var(--muted); }
.pill.alive { background:var(--ok); } .pill.suspect { background:var(--warn); } .pill.dead { background:var(--bad); } .pill.left { background:#8a93a6; }
.bar { display:inline-block; height:8px; background:#dfe3ea; border-radius:4px; width:64px; vertical-align:middle; margin-right:6px; overflow:hidden; }
.bar > span { display:block; height:100%; }
.agree { color:var(--ok); font-weight:600; } .differ { color:var(--bad); font-weight:600; } .unknown { color:var(--muted); }
.self { color:var(--muted); font-size:11px; margin-left:4px; }
.ringbox { display:flex; gap:14px; align-items:center; }
.ringbox svg { flex:none; }
#agreement { margin-top:6px; }
#charts { display:grid; grid-template-columns: repeat(6, minmax(0,1fr)); gap:10px; }
.chart .head { display:flex; justify-content:space-between; align-items:baseline; font-size:12px; color:var(--muted); }
.chart .value.muted { color:var(--muted); font-weight:400; font-size:13px; }
.chart .value { font-size:16px; color:var(--fg); font-weight:600; font-variant-numeric: tabular-nums; }
.chart svg { width:100%; height:56px; display:block; margin-top:2px; background:#fbfbfc; border-radius:3px; }
.empty { color:var(--muted); font-style:italic; }
#process { color:var(--muted); }
#error { display:none; margin:12px 16px 0; padding:8px 12px; border-radius:6px; background:#fdecec; color:#8c1d1d; border:1px solid #f3c2c2; }
`;

const SCRIPT = `
'use strict';
const PERIOD_MS = 2000;
const POINTS = 150; // 5 minutes of history
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#17becf'];
const STATES = new Set(['alive', 'suspect', 'dead', 'left']);
const colors = new Map();
const history = [];
let previous;

function colorOf(label) {
  if (!colors.has(label)) colors.set(label, PALETTE[colors.size % PALETTE.length]);
  return colors.get(label);
}

// Elements from text only: children are nodes or strings (text nodes), never markup.
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (k === 'className') e.className = v;
      else if (k === 'title') e.title = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
    }
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}
function fill(id, ...nodes) { document.getElementById(id).replaceChildren(...nodes); }

function pct(x) { return x === null || x === undefined || !Number.isFinite(x) ? '–' : (100 * x).toFixed(1) + '%'; }
function num(x) {
  if (!Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 1e6) return (x / 1e6).toFixed(1) + 'M';
  if (Math.abs(x) >= 1e4) return (x / 1e3).toFixed(1) + 'k';
  return Math.abs(x) < 10 && x % 1 !== 0 ? x.toFixed(1) : String(Math.round(x));
}
function bytes(x) {
  if (!Number.isFinite(x)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
  return (i === 0 ? x : x.toFixed(1)) + ' ' + units[i];
}
function n(v) { return typeof v === 'number' && Number.isFinite(v) ? v : 0; }

async function getJson(path) {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(path + ' answered ' + r.status);
  return r.json();
}
async function getText(path) {
  const r = await fetch(path, { cache: 'no-store' });
  return r.ok ? r.text() : '';
}

/** Prometheus text → name → sum of its samples (labels ignored). */
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\\n')) {
    if (line === '' || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{[^}]*\\})?\\s+(\\S+)/.exec(line);
    if (m) out.set(m[1], (out.get(m[1]) || 0) + Number(m[2]));
  }
  return out;
}

/** Cumulative counters over every group (and handoff counters, if this version has them). */
function totals(stats, metrics) {
  const t = { at: performance.now(), gets: 0, hits: 0, localLoads: 0, peerLoads: 0, peerErrors: 0, evictions: 0, handoffsIn: 0, handoffsOut: 0, hasHandoffs: false };
  for (const g of Object.values(stats.groups || {})) {
    const s = g.stats || {};
    t.gets += n(s.gets); t.hits += n(s.cacheHits); t.localLoads += n(s.localLoads);
    t.peerLoads += n(s.peerLoads); t.peerErrors += n(s.peerErrors);
    t.evictions += n((g.mainCache || {}).evictions) + n((g.hotCache || {}).evictions);
    // Entries that moved by warm handoff: received (an owner's miss answered by the previous holder, or
    // kept from a leaving peer's push) and pushed out by this node when it left (docs/handoff.md).
    if (typeof s.handoffHits === 'number') {
      t.hasHandoffs = true;
      t.handoffsIn += n(s.handoffHits) + n(s.handoffAccepted);
      t.handoffsOut += n(s.handoffPushed);
    }
  }
  t.cpu = metrics.get('gossipcache_process_process_cpu_seconds_total');
  return t;
}

function rate(cur, prev, field) {
  const dt = (cur.at - prev.at) / 1000;
  const d = cur[field] - prev[field];
  return dt > 0 && d >= 0 ? d / dt : 0;
}

const CHARTS = [
  { id: 'gets', title: 'gets/s', series: [['gets', '#4e79a7']] },
  { id: 'ratio', title: 'hit ratio', series: [['ratio', '#59a14f']], max: 1, format: pct },
  { id: 'loads', title: 'loads/s (origin · peers)', series: [['localLoads', '#f28e2b'], ['peerLoads', '#76b7b2']] },
  { id: 'peerErrors', title: 'peer errors/s', series: [['peerErrors', '#e15759']] },
  { id: 'handoffs', title: 'handoffs/s (in · out)', series: [['handoffsIn', '#b07aa1'], ['handoffsOut', '#ff9da7']] },
  { id: 'evictions', title: 'evictions/s', series: [['evictions', '#9c755f']] },
];

function sample(cur) {
  if (previous) {
    const dt = (cur.at - previous.at) / 1000;
    if (dt > 0 && cur.cpu !== undefined && previous.cpu !== undefined) cur.cpuPct = (100 * (cur.cpu - previous.cpu)) / dt;
    const dGets = cur.gets - previous.gets;
    history.push({
      gets: rate(cur, previous, 'gets'),
      ratio: dGets > 0 ? Math.max(0, Math.min(1, (cur.hits - previous.hits) / dGets)) : null,
      localLoads: rate(cur, previous, 'localLoads'),
      peerLoads: rate(cur, previous, 'peerLoads'),
      peerErrors: rate(cur, previous, 'peerErrors'),
      handoffsIn: cur.hasHandoffs ? rate(cur, previous, 'handoffsIn') : null,
      handoffsOut: cur.hasHandoffs ? rate(cur, previous, 'handoffsOut') : null,
      evictions: rate(cur, previous, 'evictions'),
    });
    if (history.length > POINTS) history.shift();
  }
  previous = cur;
}

function drawCharts() {
  const cards = CHARTS.map((c) => {
    const W = 300, H = 56;
    const values = c.series.flatMap(([f]) => history.map((h) => h[f]).filter((v) => v !== null));
    const max = c.max || Math.max(1e-9, ...values) * 1.15;
    const box = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img' });
    box.append(svg('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, stroke: '#e3e6ec' }));
    for (const [f, color] of c.series) {
      let d = '';
      history.forEach((h, i) => {
        const v = h[f];
        if (v === null) return;
        // Left to right from the first sample; the window scrolls once it holds POINTS samples.
        const x = (W * i) / (Math.max(history.length, 10) - 1);
        const y = H - 2 - ((H - 4) * Math.min(v, max)) / max;
        d += (d === '' || history[i - 1] === undefined || history[i - 1][f] === null ? 'M' : 'L') + x.toFixed(1) + ' ' + y.toFixed(1) + ' ';
      });
      if (d !== '') box.append(svg('path', { d: d, fill: 'none', stroke: color, 'stroke-width': 1.6, 'vector-effect': 'non-scaling-stroke' }));
    }
    const last = history[history.length - 1];
    const fmt = c.format || num;
    const shown = c.series.map(([f]) => (last && last[f] !== null ? fmt(last[f]) : '–')).join(' · ');
    const missing = c.id === 'handoffs' && last && last.handoffsIn === null;
    const head = el('div', { className: 'head' }, el('span', null, c.title),
      missing ? el('span', { className: 'value muted', title: 'this node counts no handoffs' }, 'not counted') : el('span', { className: 'value' }, shown));
    return el('div', { className: 'chart', 'data-chart': c.id }, head, box);
  });
  fill('charts', ...cards);
}

function drawMembers(cluster) {
  const shares = cluster.shares || {};
  const onRing = new Set(cluster.ring || []);
  for (const label of cluster.ring || []) colorOf(label);
  const members = (cluster.members || []).slice().sort((a, b) =>
    (onRing.has(b.grpcAddr) - onRing.has(a.grpcAddr)) || String(a.id).localeCompare(String(b.id)));
  const differ = [];
  const rows = members.map((m) => {
    const state = STATES.has(m.state) ? m.state : 'unknown';
    const live = state === 'alive' || state === 'suspect';
    const share = onRing.has(m.grpcAddr) ? n(shares[m.grpcAddr]) : null;
    let ringCell;
    if (!live) ringCell = el('span', { className: 'unknown' }, '–');
    else if (m.ringChecksum === null || m.ringChecksum === undefined) ringCell = el('span', { className: 'unknown', title: 'not published yet' }, '?');
    else if (m.ringChecksum === cluster.ringChecksum) ringCell = el('span', { className: 'agree', title: String(m.ringChecksum) }, '✓ same');
    else {
      differ.push(m.id);
      ringCell = el('span', { className: 'differ', title: 'sees ring ' + m.ringChecksum }, '✗ ' + String(m.ringChecksum));
    }
    const bar = el('span', { className: 'bar' }, el('span'));
    if (share !== null) {
      bar.firstChild.style.width = (100 * share).toFixed(1) + '%';
      bar.firstChild.style.background = colorOf(m.grpcAddr);
    }
    const swatch = el('span', { className: 'swatch' });
    swatch.style.background = onRing.has(m.grpcAddr) ? colorOf(m.grpcAddr) : 'transparent';
    const idCell = el('td', { className: 'member', title: String(m.id) }, swatch, String(m.id));
    if (m.grpcAddr === cluster.self) idCell.append(el('span', { className: 'self' }, '(this node)'));
    return el('tr', { 'data-id': String(m.id), 'data-state': state },
      idCell,
      el('td', null, String(m.grpcAddr ?? '')),
      el('td', null, el('span', { className: 'pill ' + state }, state)),
      el('td', { className: 'num' }, String(m.incarnation ?? '')),
      el('td', { className: 'share' }, share === null ? '' : bar, share === null ? '–' : pct(share)),
      el('td', { className: 'ring' }, ringCell));
  });
  fill('members-body', ...rows);
  const live = members.filter((m) => m.state === 'alive' || m.state === 'suspect').length;
  document.getElementById('agreement').replaceChildren(differ.length === 0
    ? el('span', { className: 'agree' }, 'All ' + live + ' live members publish this node\\'s ring (' + String(cluster.ringChecksum) + ').')
    : el('span', { className: 'differ' }, differ.length + ' member(s) see another ring: ' + differ.join(', ') + ' (membership is still converging, or split).'));
  return differ.length;
}

function drawRing(cluster) {
  const shares = cluster.shares || {};
  const labels = cluster.ring || [];
  const R = 46, C = 2 * Math.PI * R;
  const box = svg('svg', { width: 130, height: 130, viewBox: '0 0 130 130' });
  box.append(svg('circle', { cx: 65, cy: 65, r: R, fill: 'none', stroke: '#eef0f4', 'stroke-width': 20 }));
  let at = 0;
  for (const label of labels) {
    const len = C * n(shares[label]);
    const arc = svg('circle', { cx: 65, cy: 65, r: R, fill: 'none', stroke: colorOf(label), 'stroke-width': 20,
      'stroke-dasharray': Math.max(0, len - 1).toFixed(2) + ' ' + (C - Math.max(0, len - 1)).toFixed(2),
      'stroke-dashoffset': (-at).toFixed(2), transform: 'rotate(-90 65 65)' });
    const title = svg('title', {});
    title.textContent = label + ': ' + pct(shares[label]);
    arc.append(title);
    box.append(arc);
    at += len;
  }
  const count = svg('text', { x: 65, y: 63, 'text-anchor': 'middle', 'font-size': 22, 'font-weight': 600, fill: '#1d2330' });
  count.textContent = String(labels.length);
  const sub = svg('text', { x: 65, y: 80, 'text-anchor': 'middle', 'font-size': 11, fill: '#6b7385' });
  sub.textContent = labels.length === 1 ? 'node' : 'nodes';
  box.append(count, sub);
  const legend = el('div', null, ...labels.map((l) => {
    const sw = el('span', { className: 'swatch' });
    sw.style.background = colorOf(l);
    return el('div', { 'data-ring-member': l }, sw, l + '  ', el('b', null, pct(shares[l])));
  }));
  fill('ring', el('div', { className: 'ringbox' }, box, legend));
}

function drawGroups(stats) {
  const rows = Object.entries(stats.groups || {}).map(([name, g]) => {
    const s = g.stats || {}, mc = g.mainCache || {}, hc = g.hotCache || {};
    return el('tr', { 'data-group': name },
      el('td', null, name),
      el('td', { className: 'num' }, num(n(s.gets))),
      el('td', { className: 'num' }, pct(n(s.gets) > 0 ? n(s.cacheHits) / n(s.gets) : null)),
      el('td', { className: 'num' }, num(n(s.localLoads))),
      el('td', { className: 'num' }, num(n(s.peerLoads))),
      el('td', { className: 'num' }, num(n(s.peerErrors))),
      el('td', { className: 'num' }, num(n(mc.items)) + ' · ' + bytes(n(mc.bytes))),
      el('td', { className: 'num' }, num(n(hc.items)) + ' · ' + bytes(n(hc.bytes))),
      el('td', { className: 'num' }, num(n(mc.evictions) + n(hc.evictions))));
  });
  fill('groups-body', ...rows);
}

function drawHotKeys(hot) {
  const rows = [];
  for (const [group, keys] of Object.entries(hot.groups || {})) {
    for (const k of keys || []) rows.push({ group, ...k });
  }
  rows.sort((a, b) => n(b.minuteQps) - n(a.minuteQps));
  const trs = rows.slice(0, 12).map((k) =>
    el('tr', null,
      el('td', { className: 'key', title: String(k.key) }, String(k.key)),
      el('td', null, k.group),
      el('td', { className: 'num' }, num(n(k.minuteQps))),
      el('td', null, k.cache === 'hot' ? 'hot (mirror)' : 'main'),
      el('td', { className: 'num' }, bytes(n(k.bytes)))));
  if (trs.length === 0) trs.push(el('tr', null, el('td', { className: 'empty' }, 'no cached keys yet')));
  fill('hotkeys-body', ...trs);
}

function drawProcess(metrics, cur) {
  const parts = [];
  const rss = metrics.get('gossipcache_process_process_resident_memory_bytes');
  const heap = metrics.get('gossipcache_process_nodejs_heap_size_used_bytes');
  const lag = metrics.get('gossipcache_process_nodejs_eventloop_lag_p99_seconds');
  if (rss !== undefined) parts.push('memory ' + bytes(rss));
  if (heap !== undefined) parts.push('JS heap ' + bytes(heap));
  if (lag !== undefined) parts.push('event-loop lag p99 ' + (lag * 1000).toFixed(1) + ' ms');
  if (cur.cpuPct !== undefined) parts.push('CPU ' + cur.cpuPct.toFixed(0) + '%');
  document.getElementById('process').textContent = parts.join(' · ');
}

function setStatus(kind, text) {
  const dot = document.getElementById('dot');
  dot.className = 'dot ' + kind;
  document.getElementById('status-text').textContent = text;
}

async function tick() {
  try {
    const [cluster, stats, hot, metricsText] = await Promise.all([
      getJson('/_cluster'), getJson('/_stats'), getJson('/_hotkeys'), getText('/metrics').catch(() => ''),
    ]);
    const metrics = parseMetrics(metricsText);
    const cur = totals(stats, metrics);
    sample(cur);
    document.getElementById('self').textContent = String(cluster.self ?? '');
    document.getElementById('checksum').textContent = String(cluster.ringChecksum ?? '');
    document.getElementById('ring-size').textContent = String((cluster.ring || []).length);
    const differ = drawMembers(cluster);
    drawRing(cluster);
    drawCharts();
    drawGroups(stats);
    drawHotKeys(hot);
    drawProcess(metrics, cur);
    document.getElementById('error').style.display = 'none';
    setStatus(differ === 0 ? 'ok' : 'warn', 'updated ' + new Date().toLocaleTimeString());
  } catch (err) {
    const box = document.getElementById('error');
    box.textContent = 'Cannot read this node: ' + (err && err.message ? err.message : String(err)) + ' — retrying every 2 s; the figures below are the last ones read.';
    box.style.display = 'block';
    setStatus('bad', 'unreachable');
  } finally {
    setTimeout(tick, PERIOD_MS);
  }
}
drawCharts();
tick();
`;

const BODY = `
<header>
  <h1>gossipcache</h1>
  <span class="meta">node <b id="self">…</b></span>
  <span class="meta">ring <b id="checksum">…</b> · <b id="ring-size">…</b> nodes</span>
  <span id="status"><span id="dot" class="dot"></span><span id="status-text">loading…</span></span>
</header>
<div id="error" role="alert"></div>
<main>
  <section class="card">
    <h2>Members (this node's view)</h2>
    <table id="members">
      <thead><tr><th>member</th><th>gRPC address</th><th>state</th><th class="num">inc.</th><th>share of keys</th><th>its ring</th></tr></thead>
      <tbody id="members-body"></tbody>
    </table>
    <div id="agreement"></div>
  </section>
  <section class="card">
    <h2>Ring: share of keys per node</h2>
    <div id="ring"></div>
  </section>
  <section class="card wide">
    <h2>This node since the page opened (up to 5 minutes)</h2>
    <div id="charts"></div>
  </section>
  <section class="card">
    <h2>Groups</h2>
    <table id="groups">
      <thead><tr><th>group</th><th class="num">gets</th><th class="num">hit ratio</th><th class="num">origin loads</th><th class="num">peer loads</th><th class="num">peer errors</th><th class="num">main: items · bytes</th><th class="num">hot: items · bytes</th><th class="num">evictions</th></tr></thead>
      <tbody id="groups-body"></tbody>
    </table>
    <p id="process"></p>
  </section>
  <section class="card">
    <h2>Hottest keys here (requests/min)</h2>
    <table id="hotkeys">
      <thead><tr><th>key</th><th>group</th><th class="num">req/min</th><th>cache</th><th class="num">size</th></tr></thead>
      <tbody id="hotkeys-body"></tbody>
    </table>
  </section>
</main>
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** The page, built once at load. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gossipcache cluster</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;

/** Headers of the page: only its own script and style run, and it talks only to this node. */
export const DASHBOARD_HEADERS = {
  'Content-Type': 'text/html; charset=utf-8',
  'Content-Length': Buffer.byteLength(DASHBOARD_HTML),
  'Content-Security-Policy': [
    "default-src 'none'",
    `script-src ${sha256(SCRIPT)}`,
    `style-src ${sha256(STYLE)}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-cache',
};
