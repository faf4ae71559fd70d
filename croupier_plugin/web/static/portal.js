// Croupier Web: the instance page's live parts, fed by server-sent events.
// Plain JavaScript on purpose: nothing to fetch from a CDN (the portal may run offline).
'use strict';
const CroupierInstance = (() => {
  const SVG = 'http://www.w3.org/2000/svg';

  function text(value) { return value === null || value === undefined ? '' : String(value); }

  function seconds(value) {
    if (value === null || value === undefined) return '';
    if (value < 60) return value.toFixed(1) + 's';
    if (value < 3600) return Math.floor(value / 60) + 'm' + String(Math.floor(value % 60)).padStart(2, '0') + 's';
    return Math.floor(value / 3600) + 'h' + String(Math.floor(value % 3600 / 60)).padStart(2, '0') + 'm';
  }

  function cell(row, content) {
    const td = document.createElement('td');
    if (content instanceof Node) td.appendChild(content); else td.textContent = text(content);
    row.appendChild(td);
    return td;
  }

  function badge(cls, label) {
    const span = document.createElement('span');
    span.className = 'badge ' + cls;
    span.textContent = label;
    return span;
  }

  // Why a button and not a link: reading a job's output runs a remote command
  function outputButtons(name, job) {
    const box = document.createElement('span');
    for (const stream of ['stdout', 'stderr']) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = stream;
      b.className = 'show-' + stream;
      b.addEventListener('click', () => showOutput(name, job, stream));
      box.appendChild(b);
    }
    return box;
  }

  async function showOutput(name, job, stream) {
    const box = document.getElementById('output-box');
    const pre = document.getElementById('output');
    document.getElementById('output-title').textContent = job + ': ' + stream + ' (last lines)';
    pre.textContent = 'reading…';
    box.hidden = false;
    const url = '/api/v1/instances/' + encodeURIComponent(name) + '/jobs/' +
      encodeURIComponent(job) + '/output?lines=100&stream=' + stream;
    try {
      const answer = await fetch(url, {credentials: 'same-origin'});
      const body = await answer.json();
      pre.textContent = answer.ok ? (body.text || '(empty)') : ('error: ' + body.error);
      pre.dataset.job = job;
      pre.dataset.stream = stream;
    } catch (e) {
      pre.textContent = 'error: ' + e;
    }
  }

  function renderJobs(view) {
    const body = document.querySelector('#jobs tbody');
    body.replaceChildren();
    for (const job of view.jobs) {
      const row = document.createElement('tr');
      row.dataset.job = job.name;
      cell(row, job.name);
      cell(row, job.infrastructure);
      cell(row, job.job_id);
      const state = cell(row, badge('state-' + job.state, job.state));
      state.className = 'state';
      if (job.reason && job.state !== 'COMPLETED') state.title = job.reason;
      cell(row, job.exit_code);
      cell(row, seconds(job.queued_seconds));
      cell(row, seconds(job.running_seconds));
      cell(row, Object.entries(job.labels || {}).map(([k, v]) => k + '=' + v).join(', '));
      cell(row, job.attempts);
      cell(row, job.has_output ? outputButtons(view.name, job.name) : '');
      body.appendChild(row);
    }
  }

  function renderGraph(view) {
    const worst = {};
    const rank = {FAILED: 6, TIMEOUT: 6, CANCELLED: 5, SKIPPED: 4, RUNNING: 3, PENDING: 2, COMPLETED: 1};
    for (const job of view.jobs) {
      const now = worst[job.node];
      if (!now || (rank[job.state] || 0) > (rank[now] || 0)) worst[job.node] = job.state;
    }
    for (const g of document.querySelectorAll('#dag g.job')) {
      g.setAttribute('class', 'job state-' + (worst[g.dataset.job] || 'NOT_RUN'));
    }
  }

  function renderGantt(view) {
    const jobs = view.jobs.filter(j => j.submitted_at);
    const box = document.getElementById('gantt');
    box.replaceChildren();
    if (!jobs.length) { box.textContent = 'no job submitted yet'; return; }
    const now = Date.now() / 1000;
    const t0 = Math.min(...jobs.map(j => j.submitted_at));
    const t1 = Math.max(...jobs.map(j => j.ended_at || now));
    const span = Math.max(t1 - t0, 1);
    const left = 130, width = 460, rowH = 22;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'gantt');
    svg.setAttribute('width', left + width + 60);
    svg.setAttribute('height', jobs.length * rowH + 24);
    const x = t => left + (t - t0) / span * width;
    const add = (tag, attrs, content) => {
      const el = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      if (content !== undefined) el.textContent = content;
      svg.appendChild(el);
      return el;
    };
    jobs.forEach((job, i) => {
      const y = i * rowH + 4;
      add('text', {x: 4, y: y + 14}, job.name);
      const end = job.ended_at || now;
      const bar = (cls, from, to, title) => {
        const rect = add('rect', {class: cls, x: x(from), y: y + 3,
                                  width: Math.max(x(to) - x(from), 1), height: rowH - 8});
        rect.appendChild(document.createElementNS(SVG, 'title')).textContent = job.name + ': ' + title;
      };
      const failed = ['FAILED', 'TIMEOUT', 'CANCELLED'].includes(job.state) ? ' failed' : '';
      if (job.started_at) {
        bar('queue', job.submitted_at, job.started_at, 'queued ' + seconds(job.queued_seconds));
        bar('run' + failed, job.started_at, end, 'ran ' + seconds(job.running_seconds));
      } else if (job.ended_at) {
        // it ended between two polls: its wait and its run cannot be told apart
        bar('span' + failed, job.submitted_at, end,
            'queued and ran ' + seconds(job.ended_at - job.submitted_at) + ' (never seen running)');
      } else {
        bar('queue', job.submitted_at, now, 'queued ' + seconds(job.queued_seconds));
      }
    });
    add('text', {x: left, y: jobs.length * rowH + 20}, '0');
    add('text', {x: left + width - 30, y: jobs.length * rowH + 20}, seconds(span));
    box.appendChild(svg);
  }

  function renderExecutions(view) {
    const body = document.querySelector('#executions tbody');
    body.replaceChildren();
    for (const e of view.executions) {
      const row = document.createElement('tr');
      row.dataset.execution = e.id;
      cell(row, e.workflow + (e.parameters && e.parameters.rerun_failed ? ' (rerun failed)' : ''));
      cell(row, e.started_at);
      cell(row, e.ended_at);
      cell(row, seconds(e.duration_seconds));
      cell(row, badge('status-' + e.status, e.status)).className = 'status';
      const err = document.createElement('pre');
      err.textContent = text(e.error);
      cell(row, e.error ? err : '');
      body.appendChild(row);
    }
  }

  function render(view) {
    if (view.gone) {
      document.getElementById('instance-state').textContent = 'gone';
      return;
    }
    const state = document.getElementById('instance-state');
    state.textContent = view.state;
    state.className = 'badge status-' + view.state;
    renderJobs(view);
    renderGraph(view);
    renderGantt(view);
    renderExecutions(view);
    const running = Boolean(view.running_execution);
    document.getElementById('btn-cancel').disabled = !running;
    document.getElementById('btn-execute').disabled = running;
    document.getElementById('btn-rerun').disabled = running;
    document.getElementById('btn-uninstall').disabled = running;
  }

  function start(name) {
    for (const td of document.querySelectorAll('td.ts')) {
      td.textContent = new Date(parseFloat(td.dataset.ts) * 1000).toLocaleTimeString();
    }
    render(JSON.parse(document.getElementById('initial').textContent));
    const source = new EventSource('/api/v1/instances/' + encodeURIComponent(name) + '/events');
    source.onmessage = event => render(JSON.parse(event.data));
    // a browser holds few connections per server: an open stream left behind by a
    // page the user went away from would make the next pages wait for a free one
    window.addEventListener('pagehide', () => source.close());
  }

  return {start};
})();

// The dashboard's instance table, fed by server-sent events: every instance with its
// last execution, redrawn whenever any of them changes (no reload).
const CroupierDashboard = (() => {
  function seconds(value) {
    if (value === null || value === undefined) return '';
    if (value < 60) return value.toFixed(1) + 's';
    if (value < 3600) return Math.floor(value / 60) + 'm' + String(Math.floor(value % 60)).padStart(2, '0') + 's';
    return Math.floor(value / 3600) + 'h' + String(Math.floor(value % 3600 / 60)).padStart(2, '0') + 'm';
  }

  function link(href, label) {
    const a = document.createElement('a');
    a.href = href;
    a.textContent = label;
    return a;
  }

  function badge(cls, label) {
    const span = document.createElement('span');
    span.className = 'badge ' + cls;
    span.textContent = label;
    return span;
  }

  function cell(row, ...content) {
    const td = document.createElement('td');
    for (const c of content) {
      if (c instanceof Node) td.appendChild(c); else if (c) td.appendChild(document.createTextNode(String(c)));
    }
    row.appendChild(td);
    return td;
  }

  function render(rows) {
    const body = document.querySelector('#instances tbody');
    body.replaceChildren();
    for (const r of rows) {
      const row = document.createElement('tr');
      row.dataset.instance = r.name;
      const last = r.last_execution;
      cell(row, link('/instances/' + encodeURIComponent(r.name), r.name));
      cell(row, r.application ? link('/applications/' + encodeURIComponent(r.application), r.application) : '');
      cell(row, last ? last.workflow : '');
      cell(row, badge('status-' + r.state, r.state)).className = 'state';
      cell(row, last ? last.started_at : '');
      cell(row, last ? seconds(last.duration_seconds) : '');
      const counts = Object.entries(r.jobs || {}).sort(([a], [b]) => a.localeCompare(b));
      cell(row, ...counts.flatMap(([state, n]) => [badge('state-' + state, state + ' ' + n), ' ']));
      body.appendChild(row);
    }
    document.getElementById('instances').hidden = rows.length === 0;
    document.getElementById('no-instances').hidden = rows.length !== 0;
  }

  function start() {
    const source = new EventSource('/api/v1/dashboard/events');
    source.onmessage = event => render(JSON.parse(event.data));
    // see CroupierInstance.start: a stream left open would hold one of few connections
    window.addEventListener('pagehide', () => source.close());
  }

  return {start};
})();
