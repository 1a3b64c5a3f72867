// torii dashboard: reads the admin API of the listener that served this
// page every few seconds and renders four views (overview by team,
// upstreams, migrations, alerts). No framework, no build step, nothing
// from elsewhere; the page's Content-Security-Policy forbids inline script,
// so every handler is attached here. Data from the API is only ever put in
// the page as text (textContent, attributes), never parsed as HTML.
'use strict';

(() => {
  const REFRESH_MS = 3000;
  // Rates, error ratios and p99 are computed over the polls of the last
  // RATE_WINDOW_MS: one 3-second delta is too noisy to read.
  const RATE_WINDOW_MS = 30000;
  const WINDOWS = ['5m', '30m', '1h', '2h', '6h', '1d', '3d'];
  const VIEWS = ['overview', 'upstreams', 'migrations', 'alerts'];
  const TOKEN_KEY = 'torii.adminToken';
  const SVGNS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);

  // h builds an element: h('td', {class: 'num', text: '3'}, child...).
  // A tag 'svg:rect' is made in the SVG namespace. Attributes whose value
  // is null, undefined or false are left out; 'on<event>' adds a listener.
  function h(tag, attrs, ...children) {
    const el = tag.startsWith('svg:')
      ? document.createElementNS(SVGNS, tag.slice(4))
      : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  // ---- formatting ----------------------------------------------------

  const DASH = '—';
  const fmt = {
    // budget is the error budget left: 1 → "100.0%", -0.5 → "-50.0%".
    // The browser test formats /api/v1/slos the same way (Go's %.1f).
    budget(b) { return (b * 100).toFixed(1) + '%'; },
    pct(ratio, digits) {
      if (ratio === null || ratio === undefined || !isFinite(ratio)) return DASH;
      return (ratio * 100).toFixed(digits === undefined ? 2 : digits) + '%';
    },
    // percent is a value already in percent.
    percent(p) {
      if (p === null || p === undefined) return DASH;
      return (Number.isInteger(p) ? String(p) : p.toFixed(p < 1 ? 2 : 1)) + '%';
    },
    rate(r) {
      if (r === null || r === undefined) return DASH;
      if (r === 0) return '0 req/s';
      return r.toFixed(r >= 100 ? 0 : r >= 10 ? 1 : 2) + ' req/s';
    },
    seconds(s) {
      if (s === null || s === undefined) return DASH;
      const ms = s * 1000;
      if (ms < 10) return ms.toFixed(1) + ' ms';
      if (ms < 1000) return Math.round(ms) + ' ms';
      return (ms / 1000).toFixed(2) + ' s';
    },
    burn(b) {
      if (b === null || b === undefined) return DASH;
      return (b >= 100 ? Math.round(b) : b >= 10 ? b.toFixed(1) : b.toFixed(2)) + '×';
    },
    count(n) { return Number(n || 0).toLocaleString('en-US'); },
    time(iso) {
      if (!iso) return DASH;
      const d = new Date(iso);
      const p = (n) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    },
    span(ms) {
      const s = Math.round(Math.abs(ms) / 1000);
      if (s < 60) return `${s} s`;
      if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
      if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
      return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
    },
    ago(iso) { return iso ? fmt.span(Date.now() - new Date(iso).getTime()) + ' ago' : DASH; },
    until(iso) {
      if (!iso) return DASH;
      const ms = new Date(iso).getTime() - Date.now();
      return ms <= 0 ? 'now, once the gates pass' : 'in ' + fmt.span(ms);
    },
  };

  function timeEl(iso, text) {
    return iso ? h('time', { datetime: iso, title: fmt.time(iso), text: text || fmt.time(iso) }) : DASH;
  }

  // ---- state and polling ------------------------------------------------

  const state = {
    stats: null, slos: [], upstreams: [], migrations: [], reload: null,
    details: {},      // route → /api/v1/migrations/{route} (with the audit trail)
    samples: {},      // route → {field, list, error}
    history: [],      // polls of /api/v1/stats: {t, routes: Map}
    paused: false,
    timer: 0,
    busy: false,
    lastOK: 0,
  };

  async function getJSON(path) {
    const res = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) throw new Error(`${path}: ${res.status} ${(body && body.error) || res.statusText}`);
    return body;
  }

  function currentView() {
    const v = location.hash.slice(1).split('/')[0];
    return VIEWS.includes(v) ? v : 'overview';
  }

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    clearTimeout(state.timer);
    try {
      const [stats, slos, ups, migs, reload] = await Promise.all([
        getJSON('/api/v1/stats'), getJSON('/api/v1/slos'), getJSON('/api/v1/upstreams'),
        getJSON('/api/v1/migrations'), getJSON('/api/v1/reload'),
      ]);
      state.stats = stats;
      state.slos = slos.slos || [];
      state.upstreams = ups.upstreams || [];
      state.migrations = migs.migrations || [];
      state.reload = reload;
      pushStats(stats, performance.now());
      if (currentView() === 'migrations') {
        const ds = await Promise.all(state.migrations.map((m) =>
          getJSON('/api/v1/migrations/' + encodeURIComponent(m.route)).catch((e) => ({ error: e.message }))));
        state.migrations.forEach((m, i) => { state.details[m.route] = ds[i]; });
      }
      state.lastOK = Date.now();
      showProblem('');
      render();
    } catch (e) {
      showProblem('Could not refresh: ' + e.message + '. Showing the last data received.');
    } finally {
      state.busy = false;
      $('refresh-state').textContent = state.paused
        ? 'Refresh paused'
        : state.lastOK ? 'Updated ' + fmt.time(new Date(state.lastOK).toISOString()).slice(11) : 'Waiting for data…';
      schedule();
    }
  }

  function schedule(ms) {
    clearTimeout(state.timer);
    if (!state.paused) state.timer = setTimeout(refresh, ms === undefined ? REFRESH_MS : ms);
  }

  function showProblem(msg) {
    const p = $('problem');
    p.hidden = !msg;
    p.textContent = msg;
  }

  // pushStats keeps the polls of the last RATE_WINDOW_MS (and at least
  // two) to compute rates from. A counter that went down means torii
  // restarted: the history starts over.
  function pushStats(stats, t) {
    const routes = new Map(stats.routes.map((r) => [r.route, r]));
    const last = state.history[state.history.length - 1];
    if (last) {
      for (const [name, r] of routes) {
        const prev = last.routes.get(name);
        if (prev && r.requests < prev.requests) { state.history = []; break; }
      }
    }
    state.history.push({ t, routes });
    while (state.history.length > 2 && t - state.history[1].t >= RATE_WINDOW_MS) state.history.shift();
  }

  // traffic returns a route's request rate, error ratio and p99 over the
  // history; null before two polls.
  function traffic(route) {
    const hist = state.history;
    if (hist.length < 2) return null;
    const a = hist[0], b = hist[hist.length - 1];
    const rb = b.routes.get(route);
    if (!rb) return null;
    const ra = a.routes.get(route) || { requests: 0, errors: 0, latency: { count: 0, buckets: [] } };
    const dt = (b.t - a.t) / 1000;
    const req = rb.requests - ra.requests;
    return {
      rate: dt > 0 ? req / dt : null,
      errorRatio: req > 0 ? (rb.errors - ra.errors) / req : null,
      p99: quantile(0.99, ra.latency, rb.latency),
    };
  }

  // quantile estimates the q-quantile of the observations between two
  // cumulative histograms, interpolating linearly within the bucket as
  // Prometheus's histogram_quantile does. {over: true} when it lies past
  // the last bound.
  function quantile(q, a, b) {
    const total = b.count - a.count;
    if (!(total > 0)) return null;
    const before = new Map(a.buckets.map((x) => [x.le, x.count]));
    const rank = q * total;
    let lo = 0, below = 0;
    for (const x of b.buckets) {
      const cum = x.count - (before.get(x.le) || 0);
      if (cum >= rank) {
        const inBucket = cum - below;
        return { seconds: inBucket > 0 ? lo + (x.le - lo) * (rank - below) / inBucket : x.le };
      }
      lo = x.le;
      below = cum;
    }
    return { seconds: lo, over: true };
  }

  // ---- rendering helpers ------------------------------------------------

  // replace swaps el's children for nodes, unless they would render the
  // same markup (the DOM, and what the user is pointing at, stay put),
  // keeping keyboard focus on the element with the same data-key if it
  // had it, so a refresh never throws a keyboard user back to the top.
  function replace(el, ...nodes) {
    const box = document.createElement('div');
    box.append(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
    if (box.innerHTML === el.innerHTML) return;
    const active = document.activeElement;
    const key = active && el.contains(active) ? active.dataset.key : undefined;
    el.replaceChildren(...box.childNodes);
    if (key) {
      const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
  }

  // replaceIfChanged updates a live region only when its text changes, so
  // screen readers announce changes, not every poll.
  function replaceIfChanged(el, ...nodes) {
    const box = h('div', {}, ...nodes);
    if (el.dataset.text === box.textContent) return;
    el.dataset.text = box.textContent;
    el.replaceChildren(...box.childNodes);
  }

  function stat(value, label) {
    return h('p', { class: 'stat' }, h('b', { text: value }), h('span', { text: label }));
  }

  function table(caption, headers, rows, empty) {
    if (!rows.length) return h('p', { class: 'empty', text: empty || 'Nothing to show.' });
    return h('table', {},
      caption ? h('caption', { text: caption }) : null,
      h('thead', {}, h('tr', {}, headers.map((x) => {
        const [text, cls] = Array.isArray(x) ? x : [x];
        return h('th', { scope: 'col', class: cls, text });
      }))),
      h('tbody', {}, rows));
  }

  function badge(text, cls) { return h('span', { class: 'badge ' + cls, text }); }

  function burnClass(b) {
    if (b === null || b === undefined) return 'burn-none';
    if (b >= 14.4) return 'burn-crit';
    if (b >= 6) return 'burn-high';
    if (b >= 1) return 'burn-warn';
    return 'burn-ok';
  }

  function budgetClass(b) {
    if (b < 0) return 'bad';
    if (b < 0.25) return 'warn';
    return 'good';
  }

  // ---- overview -----------------------------------------------------------

  function sloWindows(s) {
    return [...WINDOWS, s.period].filter((w, i, all) => all.indexOf(w) === i);
  }

  // burnChart draws the burn rate per window of each SLI as bars on a log
  // scale, with the 1× line dashed.
  function burnChart(s) {
    const windows = sloWindows(s);
    const slis = [['A', 'availability', s.availability], ['L', 'latency', s.latency]].filter((x) => x[2]);
    const barW = 16, gap = 4, left = 12, rowH = 24, rowGap = 5;
    const width = left + windows.length * (barW + gap);
    const height = slis.length * (rowH + rowGap) + 10;
    // Log scale from 0.1× (empty) to 100× (full): 1× sits at a third.
    const scale = (b) => Math.max(0, Math.min(1, (Math.log10(Math.max(b, 0.1)) + 1) / 3));
    const label = [];
    const svg = h('svg:svg', {
      class: 'burn', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    });
    slis.forEach(([short, name, sli], row) => {
      const top = row * (rowH + rowGap), bottom = top + rowH;
      svg.append(h('svg:text', { x: 0, y: bottom - 6, text: short }, h('svg:title', { text: name })));
      const parts = [];
      windows.forEach((w, i) => {
        const b = sli.burn_rate ? sli.burn_rate[w] : undefined;
        const x = left + i * (barW + gap);
        const events = sli.events ? sli.events[w] || 0 : 0;
        const bad = sli.bad ? sli.bad[w] || 0 : 0;
        const has = b !== undefined && b !== null;
        const hgt = has ? Math.max(1.5, rowH * scale(b)) : 2;
        const tip = has
          ? `${name} ${w}: burn ${fmt.burn(b)} (${fmt.count(bad)} bad of ${fmt.count(events)})`
          : `${name} ${w}: no requests`;
        svg.append(h('svg:rect', { x, y: bottom - hgt, width: barW, height: hgt, class: burnClass(has ? b : null) },
          h('svg:title', { text: tip })));
        parts.push(`${w} ${has ? fmt.burn(b) : 'no data'}`);
      });
      const ref = bottom - rowH * scale(1);
      svg.append(h('svg:line', { class: 'ref', x1: left - 2, x2: width, y1: ref, y2: ref }));
      label.push(`${name}: ${parts.join(', ')}`);
    });
    windows.forEach((w, i) => {
      if (i % 2 === 0 || i === windows.length - 1) {
        svg.append(h('svg:text', { x: left + i * (barW + gap), y: height - 1, text: w }));
      }
    });
    svg.setAttribute('aria-label', 'Burn rate by window. ' + label.join('. '));
    return svg;
  }

  function firingAlerts(s) {
    const out = [];
    for (const sli of [s.availability, s.latency]) {
      if (!sli || !sli.alerts) continue;
      for (const a of sli.alerts) if (a.state === 'firing') out.push({ ...a, sli: sli.sli, route: s.route, owner: s.owner });
    }
    return out;
  }

  function budgetCell(route, s, kind) {
    const sli = s && s[kind];
    if (!sli) return h('td', { class: 'num muted', text: s ? 'not set' : 'no SLO' });
    const under = sli.under ? ` under ${sli.under}` : '';
    return h('td', { class: 'num ' + budgetClass(sli.budget_remaining) },
      h('span', { dataset: { budget: '', route, sli: kind }, text: fmt.budget(sli.budget_remaining) }),
      h('br'),
      h('span', { class: 'target', text: `target ${fmt.percent(sli.target)}${under} · ${s.period}` }));
  }

  function renderOverview() {
    const stats = state.stats;
    const slos = new Map(state.slos.map((s) => [s.route, s]));
    const groups = new Map(stats.teams.map((t) => [t, []]));
    for (const r of stats.routes) {
      const owner = r.owner || '';
      if (!groups.has(owner)) groups.set(owner, []);
      groups.get(owner).push(r);
    }
    let firing = 0, spent = 0, covered = 0;
    for (const s of state.slos) {
      firing += firingAlerts(s).length;
      for (const sli of [s.availability, s.latency]) if (sli && sli.budget_remaining <= 0) spent++;
    }
    for (const r of stats.routes) if (r.has_slo) covered++;
    replaceIfChanged($('overview-summary'),
      stat(String(stats.teams.length), 'teams'),
      stat(String(stats.routes.length), 'routes'),
      stat(`${covered} of ${stats.routes.length}`, 'routes with an SLO'),
      stat(String(firing), 'alerts firing'),
      stat(String(spent), 'budgets spent'));

    const cards = [];
    for (const [team, routes] of groups) {
      const id = 'team-' + (team || 'none');
      const withSLO = routes.filter((r) => r.has_slo).length;
      const rows = routes.map((r) => {
        const s = slos.get(r.route);
        const tr = traffic(r.route);
        const alerts = s ? firingAlerts(s) : [];
        return h('tr', { dataset: { route: r.route } },
          h('th', { scope: 'row' }, r.route, r.kind !== 'proxy' ? h('span', { class: 'muted', text: ` (${r.kind})` }) : null),
          h('td', { class: 'num', text: tr ? fmt.rate(tr.rate) : DASH }),
          h('td', { class: 'num' + (tr && tr.errorRatio > 0.01 ? ' bad' : ''), text: tr ? fmt.pct(tr.errorRatio) : DASH }),
          h('td', { class: 'num', text: tr && tr.p99 ? (tr.p99.over ? '> ' : '') + fmt.seconds(tr.p99.seconds) : DASH }),
          budgetCell(r.route, s, 'availability'),
          budgetCell(r.route, s, 'latency'),
          h('td', {}, s ? burnChart(s) : h('span', { class: 'muted', text: 'no SLO' })),
          h('td', {}, alerts.length
            ? alerts.map((a) => [badge(`${a.severity} · ${a.sli}`, a.severity === 'page' ? 'bad' : 'warn'), ' '])
            : h('span', { class: 'muted', text: 'none' })));
      });
      cards.push(h('section', { class: 'card', id, 'aria-labelledby': id + '-h' },
        h('h2', { id: id + '-h' }, team ? 'Team ' + team : 'No owning team',
          h('span', { class: 'meta', text: `${routes.length} route${routes.length === 1 ? '' : 's'}, ${withSLO} with an SLO` })),
        table('', ['Route', ['Request rate', 'num'], ['Error ratio (5xx)', 'num'], ['p99 latency', 'num'],
          ['Availability budget left', 'num'], ['Latency budget left', 'num'], 'Burn rate by window', 'Alerts firing'],
        rows, 'This team owns no route.')));
    }
    replace($('overview-teams'), cards);
  }

  // ---- upstreams ----------------------------------------------------------

  function renderUpstreams() {
    let endpoints = 0, unhealthy = 0, ejected = 0, inflight = 0;
    const cards = state.upstreams.map((u) => {
      const rows = u.endpoints.map((e) => {
        endpoints++;
        if (!e.healthy) unhealthy++;
        if (e.ejected) ejected++;
        inflight += e.in_flight;
        return h('tr', {},
          h('th', { scope: 'row' }, h('code', { text: e.addr })),
          h('td', { class: 'num', text: String(e.weight) }),
          h('td', {}, e.healthy ? badge('healthy', 'good') : badge('unhealthy', 'bad'),
            e.last_check_error ? h('div', { class: 'muted', text: e.last_check_error }) : null),
          h('td', {}, e.ejected
            ? [badge('ejected', 'bad'), ' until ', timeEl(e.ejected_until, fmt.time(e.ejected_until).slice(11))]
            : badge('in rotation', 'good')),
          h('td', { class: 'num', text: fmt.count(e.ejections) }),
          h('td', { class: 'num', text: fmt.count(e.in_flight) }),
          h('td', { class: 'num', text: fmt.count(e.consecutive_failures) }),
          h('td', {}, e.last_check ? timeEl(e.last_check, fmt.ago(e.last_check)) : h('span', { class: 'muted', text: 'no active checks' })));
      });
      const id = 'upstream-' + u.name;
      return h('section', { class: 'card', id, 'aria-labelledby': id + '-h' },
        h('h2', { id: id + '-h' }, u.name, h('span', { class: 'meta', text: `balance ${u.balance || DASH}` })),
        table('', ['Endpoint', ['Weight', 'num'], 'Health', 'Outlier detection', ['Ejections', 'num'],
          ['In flight', 'num'], ['Consecutive failures', 'num'], 'Last health check'], rows, 'No endpoints.'));
    });
    replaceIfChanged($('upstreams-summary'),
      stat(String(state.upstreams.length), 'upstreams'),
      stat(String(endpoints), 'endpoints'),
      stat(String(unhealthy), 'unhealthy'),
      stat(String(ejected), 'ejected'));
    replace($('upstreams-list'), cards.length ? cards : h('p', { class: 'empty', text: 'No upstreams.' }));
    // In-flight counts change every poll; they are not in the live summary.
    void inflight;
  }

  // ---- migrations ---------------------------------------------------------

  const cards = new Map(); // route → persistent card parts

  const PHASES = {
    progressing: 'good', completed: 'good', promoted: 'good', pending: 'neutral',
    paused: 'warn', rolled_back: 'bad', aborted: 'bad',
  };

  function gateRow(g) {
    const isCount = g.name === 'min_requests';
    const isPct = g.name === 'diff_percent';
    const show = (v) => isCount ? fmt.count(v) : isPct ? fmt.percent(v) : fmt.burn(v);
    let status;
    if (g.ok) status = badge('pass', 'good');
    else if (isCount) status = badge('waiting for requests', 'warn');
    else status = badge('over the limit', 'bad');
    return h('tr', {},
      h('th', { scope: 'row' }, h('code', { text: g.name })),
      h('td', { class: 'num', text: show(g.value) }),
      h('td', { class: 'num', text: (isCount ? '≥ ' : '≤ ') + show(g.limit) }),
      h('td', {}, status));
  }

  function migrationCard(route) {
    let c = cards.get(route);
    if (c) return c;
    const id = 'migration-' + route;
    const reason = h('input', { type: 'text', id: id + '-reason', name: 'reason', maxlength: 500, autocomplete: 'off',
      placeholder: 'why (recorded in the audit trail)' });
    const button = (action, text, cls) => h('button', {
      type: 'button', class: cls, dataset: { action, route, key: `${route}/${action}` },
      onclick: () => act(route, action, reason.value),
    }, text);
    c = {
      el: h('section', { class: 'card', id, 'aria-labelledby': id + '-h' }),
      head: h('h2', { id: id + '-h' }),
      body: h('div'),
      actions: h('div', { class: 'actions', role: 'group', 'aria-label': `Operator actions on ${route}` },
        h('label', { for: id + '-reason' }, 'Reason', reason),
        button('pause', 'Pause'), button('resume', 'Resume'),
        button('promote', 'Promote to 100%'), button('abort', 'Abort', 'danger')),
      diff: h('div'),
      samples: h('div', { class: 'samples' }),
      audit: h('div'),
    };
    c.el.append(c.head, c.body, c.actions, c.diff, c.samples, c.audit);
    cards.set(route, c);
    return c;
  }

  function renderMigration(m) {
    const c = migrationCard(m.route);
    const detail = state.details[m.route];
    replace(c.head, m.route, h('span', { class: 'meta', text: m.owner ? `owned by ${m.owner}` : 'no owning team' }));

    // The split.
    const shares = h('div', { class: 'shares', 'aria-hidden': 'true' });
    for (const b of m.backends) {
      const part = h('div', { class: b.candidate ? 'candidate' : 'primary', title: `${b.upstream} ${fmt.percent(b.percent)}` });
      part.style.width = Math.max(0, Math.min(100, b.percent)) + '%';
      shares.append(part);
    }
    const split = h('div', {}, h('h3', { text: 'Split' }), shares,
      table('', ['Backend', 'Role', ['Share of users', 'num']], m.backends.map((b) => h('tr', { dataset: { upstream: b.upstream } },
        h('th', { scope: 'row', text: b.upstream }),
        h('td', { text: b.candidate ? 'candidate' : 'primary' }),
        h('td', { class: 'num', dataset: { share: b.upstream }, text: fmt.percent(b.percent) })))),
      m.shadow ? h('p', { class: 'muted',
        text: `Shadows ${fmt.percent(m.shadow.percent)} of requests to ${m.shadow.upstream}, ${m.shadow.compare ? 'comparing the answers' : 'not comparing'}.` }) : null);

    // The rollout.
    let rollout = h('div', {}, h('h3', { text: 'Rollout' }), h('p', { class: 'muted', text: 'No rollout: the weights are the configured ones.' }));
    const ro = m.rollout;
    if (ro) {
      const steps = h('ol', { class: 'steps', 'aria-label': 'Steps, candidate share' }, ro.steps.map((s, i) => h('li', {
        class: i < ro.step ? 'done' : null, 'aria-current': i === ro.step ? 'step' : null, text: fmt.percent(s),
      })));
      const facts = [
        ['Phase', h('span', { dataset: { phase: m.route } }, badge(ro.phase.replace('_', ' '), PHASES[ro.phase] || 'neutral'))],
        ['Candidate', h('span', {}, h('code', { text: ro.candidate }), ` at ${fmt.percent(ro.percent)}`)],
        ['Step', `${ro.step + 1} of ${ro.steps.length}`],
        ['Steps', steps],
        ['Step started', ro.step_started ? timeEl(ro.step_started, `${fmt.time(ro.step_started)} (${fmt.ago(ro.step_started)})`) : DASH],
        ['Next step', ro.next_step_at ? timeEl(ro.next_step_at, `${fmt.time(ro.next_step_at)} (${fmt.until(ro.next_step_at)})`) : 'none scheduled'],
        ['Frozen', ro.frozen ? badge('frozen: ' + (ro.frozen_reason || 'store unreachable'), 'bad') : 'no'],
      ];
      if (ro.waiting) facts.push(['Waiting', ro.waiting]);
      if (ro.reason) facts.push(['Last change', ro.reason]);
      rollout = h('div', {}, h('h3', { text: 'Rollout' }),
        h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)])));
    }
    const gates = ro ? [h('h3', { text: 'Gates' }),
      table(ro.evaluated_at ? `Evaluated ${fmt.ago(ro.evaluated_at)}` : '', ['Gate', ['Value', 'num'], ['Limit', 'num'], 'Status'],
        (ro.gates || []).map(gateRow), ro.phase === 'progressing'
          ? 'No gate values yet: the gates are judged from the next evaluation (every few seconds).'
          : `No gate values: the rollout is ${ro.phase.replace('_', ' ')}, so no gate is judged.`)] : [];
    replace(c.body, h('div', { class: 'cols' }, split, rollout), gates);
    c.actions.hidden = !ro;

    // The diff report.
    const d = m.diff;
    let diff;
    if (!d) {
      diff = [h('h3', { text: 'Diff report' }), h('p', { class: 'empty',
        text: m.shadow && m.shadow.compare ? 'No comparison stored yet.' : 'The shadow does not compare answers.' })];
    } else {
      diff = [h('h3', { text: 'Diff report' }),
        h('p', {}, `${fmt.count(d.compared)} answers compared, ${fmt.count(d.noise_compared)} noise comparisons; diff gate value `,
          h('strong', { text: fmt.percent(d.diff_percent) }), '. Significant fields are highlighted.'),
        d.endpoints.map((ep) => h('div', {}, h('h4', {}, h('code', { text: ep.endpoint }),
          h('span', { class: 'muted', text: ` — ${fmt.count(ep.compared)} compared, ${fmt.count(ep.noise_compared)} noise` })),
        table('', ['Field', ['Differs', 'num'], ['Noise', 'num'], 'Verdict', 'Samples'], ep.fields.map((f) => h('tr', {
          class: f.significant ? 'significant' : null, dataset: { field: f.field },
        },
        h('th', { scope: 'row' }, h('code', { text: f.field })),
        h('td', { class: 'num', text: `${fmt.percent(f.diff_percent)} (${fmt.count(f.differ)})` }),
        h('td', { class: 'num', text: `${fmt.percent(f.noise_percent)} (${fmt.count(f.noise)})` }),
        h('td', {}, f.significant ? badge('significant', 'bad') : badge('noise', 'neutral')),
        h('td', {}, h('button', {
          type: 'button', class: 'small', dataset: { key: `${m.route}/samples/${f.field}`, samples: f.field },
          'aria-label': `Show samples of ${f.field}`, onclick: () => loadSamples(m.route, f.field),
        }, 'Show')))), 'No field differed.')))];
    }
    replace(c.diff, diff);
    renderSamples(m.route);

    // The audit trail (detail only).
    const audit = detail && detail.audit;
    replace(c.audit, h('h3', { text: 'Audit trail' }), detail && detail.error
      ? h('p', { class: 'problem', text: detail.error })
      : table('Newest first', ['When', 'Who', 'Action', ['From', 'num'], ['To', 'num'], 'Why'], (audit || []).map((e) => h('tr', {},
        h('td', {}, timeEl(e.at)),
        h('td', { text: e.actor }),
        h('td', { text: e.action }),
        h('td', { class: 'num', text: fmt.percent(e.from_percent) }),
        h('td', { class: 'num', text: fmt.percent(e.to_percent) }),
        h('td', { text: e.reason || '' }))), m.rollout ? 'Loading…' : 'No rollout, no trail.'));
    return c.el;
  }

  function renderMigrations() {
    const ms = state.migrations;
    const counts = {};
    for (const m of ms) if (m.rollout) counts[m.rollout.phase] = (counts[m.rollout.phase] || 0) + 1;
    replaceIfChanged($('migrations-summary'), stat(String(ms.length), 'migrating routes'),
      Object.entries(counts).map(([p, n]) => stat(String(n), p.replace('_', ' '))));
    const els = ms.map(renderMigration);
    for (const route of [...cards.keys()]) if (!ms.some((m) => m.route === route)) cards.delete(route);
    const list = $('migrations-list');
    // Keep the persistent cards in place (their inputs keep focus and text).
    if (els.length !== list.children.length || els.some((el, i) => list.children[i] !== el)) {
      list.replaceChildren(...(els.length ? els : [h('p', { class: 'empty', text: 'No route has a candidate, shadow or rollout.' })]));
    }
  }

  async function loadSamples(route, field) {
    state.samples[route] = { field, loading: true };
    renderSamples(route);
    try {
      const res = await getJSON(`/api/v1/migrations/${encodeURIComponent(route)}/samples?field=${encodeURIComponent(field)}&limit=10`);
      state.samples[route] = { field, list: res.samples || [] };
    } catch (e) {
      state.samples[route] = { field, error: e.message };
    }
    renderSamples(route);
    // Take a keyboard or screen-reader user to what they asked for.
    const heading = cards.get(route) && cards.get(route).samples.querySelector('h3');
    if (heading) heading.focus();
  }

  function renderSamples(route) {
    const c = cards.get(route);
    const s = state.samples[route];
    if (!c) return;
    if (!s) { replace(c.samples); return; }
    const close = h('button', { type: 'button', class: 'small', dataset: { key: `${route}/samples-close` },
      onclick: () => { delete state.samples[route]; renderSamples(route); } }, 'Close');
    let body;
    if (s.loading) body = h('p', { class: 'muted', text: 'Loading…' });
    else if (s.error) body = h('p', { class: 'problem', text: s.error });
    else {
      body = table('Values under compare.redact are stored as [redacted]; request headers are never stored.',
        ['When', 'Request', 'Primary', 'Candidate'], s.list.map((x) => h('tr', {},
          h('td', {}, timeEl(x.at, fmt.ago(x.at))),
          h('td', {}, h('code', { text: `${x.method} ${x.path}` }), x.request_id ? h('div', { class: 'muted', text: 'id ' + x.request_id }) : null),
          h('td', {}, h('pre', { text: x.primary })),
          h('td', {}, h('pre', { text: x.candidate })))), 'No sample stored for this field.');
    }
    replace(c.samples, h('h3', { tabindex: -1, dataset: { key: `${route}/samples-heading` } }, 'Samples of ', h('code', { text: s.field }), ' ', close), body);
  }

  // ---- actions ------------------------------------------------------------

  function actionStatus(msg, failed) {
    const el = $('action-status');
    el.textContent = msg;
    el.classList.toggle('failed', !!failed);
  }

  function postAction(route, action, reason, token) {
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    return fetch(`/api/v1/migrations/${encodeURIComponent(route)}/${action}`, {
      method: 'POST', headers, credentials: 'same-origin', cache: 'no-store',
      body: JSON.stringify({ reason: reason || '', actor: 'dashboard' }),
    });
  }

  const CONFIRM = {
    abort: (r) => `Abort the rollout of ${r}? The candidate's share goes to 0 at once, for every user.`,
    promote: (r) => `Promote the candidate of ${r}? It gets 100% of the users at once.`,
  };

  async function act(route, action, reason) {
    if (CONFIRM[action] && !(await confirmDialog(CONFIRM[action](route), action === 'abort' ? 'Abort' : 'Promote'))) {
      actionStatus(`${action} of ${route} cancelled.`);
      return;
    }
    actionStatus(`Sending ${action} for ${route}…`);
    try {
      let token = sessionStorage.getItem(TOKEN_KEY) || '';
      let res = await postAction(route, action, reason, token);
      if (res.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        token = await askToken();
        if (!token) { actionStatus(`${action} of ${route} needs the admin token; nothing was sent.`, true); return; }
        res = await postAction(route, action, reason, token);
        if (res.status !== 401) sessionStorage.setItem(TOKEN_KEY, token);
      }
      let body = {};
      try { body = await res.json(); } catch (e) { body = {}; }
      if (!res.ok) {
        actionStatus(`${action} of ${route} failed (${res.status}): ${body.error || res.statusText}`, true);
        return;
      }
      actionStatus(`${route}: ${action} done. Phase ${String(body.phase).replace('_', ' ')}, candidate at ${fmt.percent(body.percent)}.`);
    } catch (e) {
      actionStatus(`${action} of ${route} failed: ${e.message}`, true);
    }
    refresh();
  }

  // modal shows a <dialog> and resolves with the value of onOK() when its
  // form is submitted, or null when cancelled (button or Escape).
  function modal(dialog, form, cancel, onOK) {
    return new Promise((resolve) => {
      const opener = document.activeElement;
      const done = (v) => {
        form.removeEventListener('submit', submit);
        cancel.removeEventListener('click', dismiss);
        dialog.removeEventListener('cancel', dismiss);
        if (dialog.open) dialog.close();
        if (opener && opener.focus) opener.focus();
        resolve(v);
      };
      const submit = (e) => { e.preventDefault(); done(onOK()); };
      const dismiss = (e) => { e.preventDefault(); done(null); };
      form.addEventListener('submit', submit);
      cancel.addEventListener('click', dismiss);
      dialog.addEventListener('cancel', dismiss);
      dialog.showModal();
    });
  }

  async function confirmDialog(text, ok) {
    $('confirm-title').textContent = ok + '?';
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = ok;
    const r = modal($('confirm-dialog'), $('confirm-form'), $('confirm-cancel'), () => true);
    $('confirm-cancel').focus();
    return (await r) === true;
  }

  async function askToken() {
    const input = $('token-input');
    input.value = '';
    const r = modal($('token-dialog'), $('token-form'), $('token-cancel'), () => input.value.trim());
    input.focus();
    return (await r) || '';
  }

  // ---- alerts and reload ------------------------------------------------------

  function renderAlerts() {
    const firing = [], resolved = [];
    for (const s of state.slos) {
      for (const sli of [s.availability, s.latency]) {
        if (!sli || !sli.alerts) continue;
        for (const a of sli.alerts) {
          const row = { ...a, sli, route: s.route, owner: s.owner };
          if (a.state === 'firing') firing.push(row);
          else if (a.state === 'resolved') resolved.push(row);
        }
      }
    }
    const bySince = (a, b) => String(b.since || '').localeCompare(String(a.since || ''));
    firing.sort(bySince);
    resolved.sort(bySince);
    const cols = (when) => ['Route', 'Team', 'SLI', 'Severity', when, 'Burn rate 1h / 5m', 'Conditions'];
    const row = (a) => h('tr', {},
      h('th', { scope: 'row', text: a.route }),
      h('td', { text: a.owner || DASH }),
      h('td', { text: a.sli.sli }),
      h('td', {}, badge(a.severity, a.state !== 'firing' ? 'neutral' : a.severity === 'page' ? 'bad' : 'warn')),
      h('td', {}, timeEl(a.since, a.since ? `${fmt.time(a.since)} (${fmt.ago(a.since)})` : DASH)),
      h('td', { class: 'num', text: `${fmt.burn((a.sli.burn_rate || {})['1h'])} / ${fmt.burn((a.sli.burn_rate || {})['5m'])}` }),
      h('td', { text: (a.conditions || []).join(', ') || DASH }));
    const count = $('alert-count');
    count.textContent = firing.length ? String(firing.length) : '';
    count.setAttribute('aria-label', firing.length ? `${firing.length} firing` : '');
    replaceIfChanged($('alerts-summary'), stat(String(firing.length), 'firing'), stat(String(resolved.length), 'resolved'),
      stat(state.reload && state.reload.ok ? 'OK' : 'failed', 'last config reload'));
    replace($('alerts-firing'), table('', cols('Firing since'), firing.map(row), 'No alert is firing.'));
    replace($('alerts-resolved'), table('', cols('Resolved at'), resolved.map(row), 'No alert resolved since torii started.'));

    const r = state.reload;
    replaceIfChanged($('reload-status'), r ? h('dl', { class: 'facts' },
      h('dt', { text: 'Last attempt' }), h('dd', {}, r.ok ? badge('succeeded', 'good') : badge('failed', 'bad'), ' ', r.at ? timeEl(r.at) : 'none since start'),
      h('dt', { text: 'Serving the config loaded at' }), h('dd', {}, timeEl(r.last_success)),
      r.error ? [h('dt', { text: 'Error' }), h('dd', {}, h('pre', { text: r.error }),
        h('p', { class: 'muted', text: 'The previous config keeps serving until a reload succeeds.' }))] : null) : DASH);
  }

  // ---- views ------------------------------------------------------------------

  function render() {
    if (!state.stats) return;
    renderOverview();
    renderUpstreams();
    renderMigrations();
    renderAlerts();
    const hash = location.hash.slice(1);
    if (hash.startsWith('migrations/') && !state.scrolled) {
      const el = $('migration-' + decodeURIComponent(hash.slice('migrations/'.length)));
      if (el) { el.scrollIntoView(); state.scrolled = true; }
    }
  }

  function showView(focus) {
    const view = currentView();
    for (const v of VIEWS) $('view-' + v).hidden = v !== view;
    for (const a of document.querySelectorAll('nav a[data-view]')) {
      if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `torii — ${view}`;
    if (focus) $('h-' + view).focus();
  }

  function init() {
    window.addEventListener('hashchange', () => {
      state.scrolled = false;
      showView(true);
      if (currentView() === 'migrations') refresh();
    });
    $('refresh-toggle').addEventListener('click', (e) => {
      state.paused = !state.paused;
      e.currentTarget.setAttribute('aria-pressed', String(state.paused));
      e.currentTarget.textContent = state.paused ? 'Resume refresh' : 'Pause refresh';
      if (state.paused) { clearTimeout(state.timer); $('refresh-state').textContent = 'Refresh paused'; } else refresh();
    });
    showView(false);
    // A second poll soon after the first, so rates show within a second.
    refresh().then(() => schedule(1000));
  }

  init();
})();
