// The huatuo console: plain script, no framework. Every piece of node data comes from the
// agent's own API, called with the token kept in sessionStorage (none from loopback).
'use strict';

const PREFIX = 'huatuo_bamai_';
// Rows the timeline keeps in the page; older ones are paged from storage on demand.
const MAX_ROWS = 500;
const PAGE = 100;

const $ = (selector, root = document) => root.querySelector(selector);

// Builds an element; strings become text (never HTML), so record fields cannot inject markup.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function showError(message) {
  const box = $('#error');
  box.textContent = message;
  box.hidden = !message;
}

class Unauthorized extends Error {}

function headers(extra = {}) {
  const token = sessionStorage.getItem('huatuo-token');
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

// Calls the API; a 401 asks for a token, other errors carry the API's message.
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  if (response.status === 401) {
    $('#token-form').hidden = false;
    throw new Unauthorized('this agent needs a token');
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      message = `${body.error?.code ?? response.status}: ${body.error?.message ?? message}`;
    } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${message}`);
  }
  return response;
}

const apiJson = async (path, options) => (await api(path, options)).json();

function report(error) {
  if (error instanceof Unauthorized) showError('Enter the API token to see this node.');
  else if (error.name !== 'AbortError') showError(String(error.message ?? error));
}

// Prometheus text → [{name, labels, value}] (names without the huatuo_bamai_ prefix).
function parseMetrics(text) {
  const series = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split('\n')) {
    if (!raw || raw.startsWith('#')) continue;
    const match = line.exec(raw);
    if (!match) continue;
    const labels = {};
    for (const l of (match[2] ?? '').matchAll(label)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    series.push({ name: match[1].replace(PREFIX, ''), labels, value: Number(match[3]) });
  }
  return series;
}

const sum = (series, name) => series.filter(s => s.name === name).reduce((a, s) => a + s.value, 0);

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
  const m = Math.floor(seconds % 3600 / 60);
  return d ? `${d}d ${h}h ${m}m` : h ? `${h}h ${m}m` : `${m}m ${Math.floor(seconds % 60)}s`;
}

function facts(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

// ---- Overview -------------------------------------------------------------------------

function variantOf(program) {
  if (program.attached !== null && program.attached !== undefined) {
    const v = program.tried[program.attached];
    return `${program.program}: ${v.kind} ${v.target}`;
  }
  if (program.not_needed) return `${program.program}: not needed (${program.not_needed})`;
  const why = program.tried.map(t => `${t.kind} ${t.target}: ${t.error ?? 'failed'}`).join('; ');
  return `${program.program}: none attached${why ? ` (${why})` : ''}`;
}

function ruleState(rule) {
  if (rule.disabled) return `disabled: ${rule.disabled}`;
  if (rule.fallback_for) return `fallback for ${rule.fallback_for}`;
  return rule.enabled ? 'enabled' : 'disabled';
}

function counterText(counters) {
  if (!counters) return '';
  return Object.entries(counters)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => `${k} ${v}`).join(', ');
}

async function overview() {
  const [status, metricsText] = await Promise.all([
    apiJson('/status'),
    // Only the agent's own families: with many containers the whole page is megabytes.
    api('/metrics?prefix=agent_&prefix=process_').then(r => r.text()),
  ]);
  const metrics = parseMetrics(metricsText);
  const node = status.node ?? {};
  $('#node-name').textContent = node.hostname ?? '';
  facts($('#node-facts'), [
    ['node', node.hostname ?? '?'],
    ['kernel', node.kernel ?? '?'],
    ['node uptime', node.uptime_seconds !== undefined ? duration(node.uptime_seconds) : '?'],
    ['agent', `huatuo ${status.version ?? ''}`],
    ['rule files', status.rule_files ?? 0],
  ]);
  facts($('#health'), [
    ['RSS', bytes(sum(metrics, 'agent_rss_bytes') || sum(metrics, 'process_resident_memory_bytes'))],
    ['CPU used', `${sum(metrics, 'agent_cpu_seconds_total').toFixed(2)} s`],
    ['queue drops', sum(metrics, 'agent_samples_dropped_total') + sum(metrics, 'agent_records_dropped_total')],
    ['BPF events shed', sum(metrics, 'agent_bpf_events_shed_total')],
    ['BPF events lost', sum(metrics, 'agent_bpf_events_lost_total')],
    ['records stored', sum(metrics, 'agent_storage_written_total')],
  ]);
  const templates = status.templates ?? [];
  $('#templates tbody').replaceChildren(...(templates.length ? templates.map(t => el('tr', { 'data-template': t.name },
    el('td', {}, t.name),
    el('td', { class: t.loaded ? 'ok' : 'bad' }, t.loaded ? `loaded${t.transport ? ` (${t.transport})` : ''}` : 'not loaded'),
    el('td', {}, t.error ? el('div', { class: 'bad' }, t.error) : null,
      (t.programs ?? []).map(p => el('div', { class: 'variant' }, variantOf(p)))),
    el('td', {}, `${t.counters?.emitted ?? 0} / ${t.counters?.shed ?? 0} / ${t.counters?.lost ?? 0}`),
  )) : [el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'no BPF templates loaded (--no-bpf or none needed)'))]));
  $('#rules tbody').replaceChildren(...(status.rules ?? []).map(r => el('tr', {},
    el('td', {}, r.name), el('td', {}, r.kind), el('td', {}, r.source),
    el('td', { class: r.enabled ? 'ok' : 'muted' }, ruleState(r)),
    el('td', {}, counterText(r.counters)),
  )));
}

// ---- Timeline -------------------------------------------------------------------------

const timeline = { cursor: null, stream: null, hiddenNewer: 0, filter: {} };

function rowOfRecord(doc) {
  return {
    id: doc.tracer_id, time: doc.tracer_time ?? doc.time ?? doc.uploaded_time, tracer: doc.tracer_name,
    type: doc.tracer_type, container: doc.container_hostname ?? doc.container_id ?? '', doc,
    cursor: cursorOf(doc),
  };
}

function rowOfEvent(event) {
  const data = event.data ?? {};
  return {
    id: data.tracer_id, time: data.observed_timestamp, tracer: data.tracer_name,
    type: data.tracer_run_type, container: data.container_hostname ?? data.container_id ?? '', doc: data,
  };
}

function summary(data) {
  if (!data || typeof data !== 'object') return '';
  return Object.entries(data)
    .filter(([, v]) => v !== null && typeof v !== 'object' && String(v).length < 80)
    .slice(0, 6).map(([k, v]) => `${k}=${v}`).join(' ');
}

function tableRow(row) {
  return el('tr', { 'data-id': row.id, 'data-cursor': row.cursor, tabindex: 0, onclick: () => detail(row), onkeydown: e => { if (e.key === 'Enter') detail(row); } },
    el('td', { class: 'time' }, row.time ?? ''), el('td', {}, row.tracer ?? ''), el('td', {}, row.type ?? ''),
    el('td', {}, row.container), el('td', { class: 'summary' }, summary(row.doc.tracer_data)));
}

// A stack written as frames: an array of strings, or a string of lines.
function frames(value) {
  if (Array.isArray(value) && value.length && value.every(v => typeof v === 'string')) return value;
  if (typeof value === 'string' && value.includes('\n')) return value.split('\n').filter(Boolean);
  return null;
}

function fieldView(value) {
  const stack = frames(value);
  if (stack) return el('ol', { class: 'stack' }, stack.map(f => el('li', {}, f)));
  if (value && typeof value === 'object') {
    return el('table', { class: 'fields' }, Object.entries(value).map(([k, v]) =>
      el('tr', {}, el('th', {}, k), el('td', {}, fieldView(v)))));
  }
  return String(value);
}

function detail(row) {
  const body = $('#detail-body');
  const doc = { ...row.doc };
  const data = doc.tracer_data;
  delete doc.tracer_data;
  body.replaceChildren(
    el('h3', {}, `${row.tracer} ${row.time ?? ''}`),
    fieldView(doc),
    el('h4', {}, 'tracer_data'),
    data?.folded_stacks ? el('p', {}, el('a', { href: `#flame/${row.id}` }, 'open as flame graph')) : null,
    fieldView(data ?? {}),
  );
  $('#detail').showModal();
}

function historyQuery(cursor) {
  const params = new URLSearchParams({ limit: PAGE });
  for (const [k, v] of Object.entries(timeline.filter)) if (v) params.set(k, v);
  if (cursor) params.set('cursor', cursor);
  return `/v1/events?${params}`;
}

async function older() {
  const button = $('#older');
  button.disabled = true;
  try {
    const page = (await apiJson(historyQuery(timeline.cursor))).data;
    const body = $('#timeline tbody');
    body.append(...page.records.map(r => tableRow(rowOfRecord(r))));
    timeline.cursor = page.next_cursor ?? null;
    // Keep the page small: the newest rows leave the top, live updates pause.
    let dropped = 0;
    while (body.rows.length > MAX_ROWS) { body.rows[0].remove(); dropped += 1; }
    if (dropped) timeline.hiddenNewer += dropped;
    $('#history-state').textContent = `${page.indexed} stored records indexed` +
      (page.partial ? '; text search stopped at its read bound, press again to go on' : '') +
      (timeline.hiddenNewer ? `; ${timeline.hiddenNewer} newer rows hidden (Apply returns to the newest)` : '') +
      (timeline.cursor ? '' : '; no older records');
    button.disabled = !timeline.cursor;
  } catch (error) {
    button.disabled = false;
    report(error);
  }
}

function addLive(row) {
  const text = timeline.filter.text;
  if (text) {
    try { if (!new RegExp(text).test(JSON.stringify(row.doc))) return; } catch (_) { return; }
  }
  if (timeline.hiddenNewer) { timeline.hiddenNewer += 1; return; }
  const body = $('#timeline tbody');
  const tr = tableRow(row);
  tr.classList.add('live');
  body.prepend(tr);
  if (body.rows.length > MAX_ROWS) {
    body.rows[body.rows.length - 1].remove();
    // The history cursor moves up to the last stored row still shown, so the removed row is
    // paged in again rather than skipped.
    const stored = [...body.rows].reverse().find(r => r.dataset.cursor);
    timeline.cursor = stored ? stored.dataset.cursor : null;
  }
}

// The history cursor of a stored record: its time in ms and its id, as the API writes it.
function cursorOf(doc) {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) ([+-]\d\d)(\d\d)$/.exec(doc.tracer_time ?? '');
  const ms = m ? Date.parse(`${m[1]}T${m[2]}${m[3]}:${m[4]}`) : NaN;
  return Number.isFinite(ms) && doc.tracer_id ? `${ms}_${doc.tracer_id}` : undefined;
}

// The watch stream is a POST, so it is read with fetch and parsed as SSE here.
async function live() {
  timeline.stream?.abort();
  const controller = new AbortController();
  timeline.stream = controller;
  const filters = {};
  if (timeline.filter.tracer) filters.tracer_name = timeline.filter.tracer;
  if (timeline.filter.container) filters.container_hostname = timeline.filter.container;
  const state = $('#live-state');
  state.textContent = 'connecting';
  try {
    const response = await api('/v1/events/watch', {
      method: 'POST', signal: controller.signal,
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ filters }),
    });
    state.textContent = 'live';
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = 'message', data = '';
        for (const line of frame.split('\n')) {
          if (line.startsWith('event:')) kind = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (kind === 'message' && data) addLive(rowOfEvent(JSON.parse(data)));
        else if (kind === 'lost' || kind === 'dropped') state.textContent = `live (${kind}: ${data})`;
      }
    }
    state.textContent = 'live stream ended';
  } catch (error) {
    if (error.name !== 'AbortError') { state.textContent = 'live stream failed'; report(error); }
  }
}

async function timelinePage() {
  timeline.filter = Object.fromEntries(new FormData($('#timeline-filter')));
  timeline.cursor = null;
  timeline.hiddenNewer = 0;
  $('#timeline tbody').replaceChildren();
  live();
  await older();
}

// ---- Flame graphs -----------------------------------------------------------------------

// Shows an SVG from the API in a frame of its own, so inferno's search and zoom script runs.
async function showSvg(target, path) {
  const svg = await (await api(path)).blob();
  const frame = el('iframe', { class: 'svg', title: 'flame graph', src: URL.createObjectURL(svg) });
  target.replaceChildren(frame);
  await new Promise(resolve => frame.addEventListener('load', resolve, { once: true }));
  // inferno draws the root at the bottom: start there, where every stack begins.
  frame.contentWindow?.scrollTo(0, frame.contentDocument?.documentElement?.scrollHeight ?? 0);
  return frame;
}

async function flamePage(selected) {
  const page = (await apiJson('/v1/events?limit=100&text=%22folded_stacks%22')).data;
  const profiles = page.records.filter(r => Array.isArray(r.tracer_data?.folded_stacks));
  const diff = $('#diff');
  $('#profiles tbody').replaceChildren(...(profiles.length ? profiles.map(r => el('tr', { 'data-id': r.tracer_id },
    el('td', {}, el('input', { type: 'radio', name: 'show', value: r.tracer_id, checked: r.tracer_id === selected, 'aria-label': `show ${r.tracer_name} ${r.tracer_time}`, onchange: () => { location.hash = `#flame/${r.tracer_id}`; } })),
    el('td', {}, el('input', { type: 'radio', name: 'base', value: r.tracer_id, 'aria-label': `base ${r.tracer_name} ${r.tracer_time}`, onchange: () => { diff.disabled = false; } })),
    el('td', {}, r.tracer_time ?? ''), el('td', {}, r.tracer_name), el('td', {}, r.container_hostname ?? 'host'),
  )) : [el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'no stored record carries a profile yet'))]));
  const shown = selected ?? profiles[0]?.tracer_id;
  if (shown) await showSvg($('#flame-view'), `/v1/events/${encodeURIComponent(shown)}/flamegraph.svg`);
}

async function compare() {
  const shown = $('input[name=show]:checked')?.value ?? $('#profiles tbody tr')?.dataset.id;
  const base = $('input[name=base]:checked')?.value;
  if (!shown || !base) return;
  await showSvg($('#flame-view'), `/v1/events/${encodeURIComponent(shown)}/flamegraph.svg?base=${encodeURIComponent(base)}`);
}

// ---- Containers -------------------------------------------------------------------------

// How a container is named on the page: its pod or host name, else its name, with its short id.
function containerName(labels) {
  const name = labels.container_host || labels.container_name;
  const short = labels.container_id.slice(0, 12);
  return name && name !== short ? `${name} (${short})` : short;
}

// The containers the agent reports series for (it writes zero series for every container
// it knows), by id: [{id, name}] sorted by name.
function knownContainers(metrics) {
  const byId = new Map();
  for (const s of metrics) {
    if (s.labels.container_id && !byId.has(s.labels.container_id)) byId.set(s.labels.container_id, containerName(s.labels));
  }
  return [...byId].map(([id, name]) => ({ id, name })).sort((a, b) => a.name.localeCompare(b.name));
}

// Refills a container chooser, keeping its choice; `first` is the no-container option.
function fillContainers(select, containers, first) {
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '' }, first),
    ...containers.map(c => el('option', { value: c.id, selected: c.id === chosen }, c.name)));
}

// ---- Profiles ---------------------------------------------------------------------------

// A datetime-local value (local time, seconds) for a Date.
function localInput(date) {
  const pad = n => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

// Unix seconds of a datetime-local value, or '' when it is empty.
const unixOf = value => (value ? String(Math.floor(new Date(value).getTime() / 1000)) : '');

async function profilesPage() {
  const form = $('#cp-form');
  // The container families of the CPU and run-queue rules have a series for every container.
  const metrics = parseMetrics(await (await api('/metrics?prefix=cpu&prefix=runqlat')).text());
  fillContainers(form.elements.container, knownContainers(metrics), 'host (every process)');
  const now = Date.now();
  const defaults = { since: 5 * 60e3, until: 0, base_since: 10 * 60e3, base_until: 5 * 60e3 };
  for (const [name, ago] of Object.entries(defaults)) {
    if (!form.elements[name].value) form.elements[name].value = localInput(new Date(now - ago));
  }
  await showProfile(false);
}

// Draws the chosen range, or its diff against the base range.
async function showProfile(diff) {
  const form = Object.fromEntries(new FormData($('#cp-form')));
  const params = new URLSearchParams({ type: form.type, since: unixOf(form.since), until: unixOf(form.until) });
  if (form.container) params.set('container', form.container);
  if (diff) {
    params.set('base_since', unixOf(form.base_since));
    params.set('base_until', unixOf(form.base_until));
  }
  await showSvg($('#cp-view'), `/v1/profiles/flamegraph.svg?${params}`);
}

// ---- Latency ----------------------------------------------------------------------------

const LATENCY = /^(runqlat|softirq|iolatency)/;

async function latency() {
  const metrics = parseMetrics(await (await api('/metrics?prefix=runqlat&prefix=softirq&prefix=iolatency')).text())
    .filter(s => LATENCY.test(s.name) && 'zone' in s.labels);
  const select = $('#latency-container');
  fillContainers(select, knownContainers(metrics), 'host only');
  const chosen = select.value;
  const groups = new Map();
  for (const s of metrics) {
    const container = s.labels.container_id;
    if (container && container !== chosen) continue;
    const rest = Object.entries(s.labels).filter(([k]) => k !== 'zone' && !k.startsWith('container_') && k !== 'host' && k !== 'region')
      .map(([k, v]) => `${k}=${v}`).join(' ');
    const key = `${s.name}${container ? ` (container ${containerName(s.labels)})` : ' (host)'}${rest ? ` ${rest}` : ''}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(s);
  }
  const charts = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, series]) => {
    series.sort((a, b) => Number(a.labels.zone) - Number(b.labels.zone));
    const max = Math.max(1, ...series.map(s => s.value));
    return el('figure', { class: 'chart' }, el('figcaption', {}, key),
      series.map(s => el('div', { class: 'bar-row' },
        el('span', { class: 'zone' }, `zone ${s.labels.zone}`),
        el('span', { class: 'bar', style: `width:${(70 * s.value / max).toFixed(1)}%` }),
        el('span', { class: 'count' }, s.value))));
  });
  $('#latency-charts').replaceChildren(...(charts.length ? charts
    : [el('p', { class: 'muted' }, 'no latency histograms yet (runqlat, softirq and iolatency rules need their BPF templates)')]));
}

// ---- Operations -------------------------------------------------------------------------

const operations = new Map();

function operationRow(op) {
  const result = op.result?.flamegraph
    ? el('button', { type: 'button', onclick: () => showSvg($('#op-result'), op.result.flamegraph).catch(report) }, 'flame graph')
    : op.terminal ? `${op.terminal.outcome}${op.terminal.message ? `: ${op.terminal.message}` : ''}` : '';
  return el('tr', { 'data-op': op.request_id }, el('td', {}, op.request_id), el('td', {}, op.kind),
    el('td', { class: 'op-status' }, op.terminal?.outcome ?? op.status), el('td', {}, result));
}

function renderOperations() {
  $('#operations tbody').replaceChildren(...[...operations.values()].reverse().map(operationRow));
}

async function poll(id) {
  for (;;) {
    const op = (await apiJson(`/v1/operations/${encodeURIComponent(id)}`)).data;
    operations.set(id, op);
    renderOperations();
    if (op.terminal) {
      if (op.result?.flamegraph) await showSvg($('#op-result'), op.result.flamegraph);
      return;
    }
    await new Promise(r => setTimeout(r, 500));
  }
}

async function startOperation(event) {
  event.preventDefault();
  const form = Object.fromEntries(new FormData(event.target));
  const [kind, type, mode] = form.kind.split(':');
  const request = {
    request_id: `console-${Date.now()}`,
    kind,
    scope: form.container ? 'container' : 'host',
    duration_seconds: Number(form.seconds),
    spec: kind === 'profiling' ? { type, mode } : { type },
  };
  if (form.container) request.container_id = form.container;
  const op = (await apiJson('/v1/operations', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(request),
  })).data;
  operations.set(op.request_id, op);
  renderOperations();
  await poll(op.request_id);
}

// ---- Pages ------------------------------------------------------------------------------

let latencyTimer = null;

async function route() {
  const [page, arg] = (location.hash.slice(1) || 'overview').split('/');
  const known = ['overview', 'timeline', 'flame', 'profiles', 'latency', 'operations'];
  const name = known.includes(page) ? page : 'overview';
  for (const p of known) $(`#page-${p}`).hidden = p !== name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (name !== 'timeline') timeline.stream?.abort();
  clearInterval(latencyTimer);
  showError('');
  document.body.dataset.page = name;
  document.body.dataset.ready = 'no';
  try {
    if (name === 'overview') await overview();
    if (name === 'timeline') await timelinePage();
    if (name === 'flame') await flamePage(arg);
    if (name === 'profiles') await profilesPage();
    if (name === 'latency') {
      await latency();
      latencyTimer = setInterval(() => latency().catch(report), 5000);
    }
  } catch (error) {
    report(error);
  }
  document.body.dataset.ready = 'yes';
  // How long the page took from navigation to its data shown (read by the browser tests).
  document.body.dataset.readyMs ??= Math.round(performance.now());
}

document.addEventListener('DOMContentLoaded', () => {
  $('#token-form').addEventListener('submit', event => {
    event.preventDefault();
    sessionStorage.setItem('huatuo-token', $('#token-input').value.trim());
    $('#token-form').hidden = true;
    route();
  });
  $('#timeline-filter').addEventListener('submit', event => { event.preventDefault(); timelinePage().catch(report); });
  $('#older').addEventListener('click', () => older());
  $('#diff').addEventListener('click', () => compare().catch(report));
  $('#cp-form').addEventListener('submit', event => { event.preventDefault(); showProfile(false).catch(report); });
  $('#cp-diff').addEventListener('click', () => showProfile(true).catch(report));
  $('#latency-container').addEventListener('change', () => latency().catch(report));
  $('#op-form').addEventListener('submit', event => startOperation(event).catch(report));
  window.addEventListener('hashchange', route);
  route();
});
