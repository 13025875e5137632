/* The integrations dashboard: a plain client of the hub's public HTTP API.
 *
 * Rules this file keeps: no inline handlers or styles (the page runs under a strict CSP),
 * API data only ever reaches the page through textContent / attributes (never innerHTML),
 * every failed call shows the API's own error message, nothing is fetched from elsewhere.
 */
'use strict';

(function () {
  const TOKEN_KEY = 'hub.dashboard.token';
  const LOG_PAGE_SIZE = 20;
  const STATUS_LABELS = {
    ACTIVE: 'Active',
    INACTIVE: 'Inactive',
    ERROR: 'Error',
    EXPIRED: 'Expired',
    NONE: 'Not connected',
  };
  // Activity the hub records itself, besides provider actions (for the logs' action filter).
  const CORE_ACTIONS = ['status_change', 'exchange_code', 'account_identity', 'refresh_token', 'revoke_token'];
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const state = {
    token: null,
    providers: [],
    integrations: new Map(),
    chartDays: new Map(),
    daily: new Map(),
  };

  // --- small DOM helpers ---------------------------------------------------------------

  const $ = (sel, root) => (root || document).querySelector(sel);

  function append(el, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  /** An HTML element. Strings become text nodes; attributes are set one by one. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key === 'on') for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    for (const child of children) {
      if (child === null || child === undefined) continue;
      if (typeof child === 'string') el.append(document.createTextNode(child));
      else el.append(child);
    }
    return el;
  }

  function titleOf(provider) {
    const p = state.providers.find((x) => x.name === provider);
    return p ? p.title : provider;
  }

  function capitalise(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
  }

  function pathOf(provider, tail) {
    return '/api/integrations/' + encodeURIComponent(provider) + (tail ? '/' + tail : '');
  }

  // --- time formatting -----------------------------------------------------------------

  function relative(iso) {
    const at = Date.parse(iso);
    if (Number.isNaN(at)) return 'unknown';
    const seconds = (Date.now() - at) / 1000;
    const future = seconds < 0;
    const abs = Math.abs(seconds);
    let text;
    if (abs < 45) return future ? 'in a moment' : 'just now';
    if (abs < 3600) text = Math.max(1, Math.round(abs / 60)) + 'm';
    else if (abs < 86400) text = Math.round(abs / 3600) + 'h';
    else if (abs < 86400 * 45) text = Math.round(abs / 86400) + 'd';
    else return new Date(at).toLocaleDateString('en', { year: 'numeric', month: 'short', day: 'numeric' });
    return future ? 'in ' + text : text + ' ago';
  }

  function fullTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const options = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
    if (d.getFullYear() !== new Date().getFullYear()) options.year = 'numeric';
    return d.toLocaleString('en', options);
  }

  function timeEl(iso, kind) {
    return h('time', { datetime: iso, title: fullTime(iso), dataset: { relative: kind || 'ago' } }, relative(iso));
  }

  function refreshRelativeTimes() {
    for (const el of document.querySelectorAll('time[data-relative]')) {
      el.textContent = relative(el.getAttribute('datetime'));
    }
  }

  function percentText(rate) {
    const value = parseFloat(rate);
    if (!Number.isFinite(value)) return String(rate);
    // Rounded, except that a rate with failures never shows as 100%.
    return (value < 100 ? Math.min(99, Math.round(value)) : 100) + '%';
  }

  // --- busy tracking (also lets tests and navigation wait for quiet) -------------------

  let pending = 0;
  let idleWaiters = [];

  function track(delta) {
    pending += delta;
    document.documentElement.dataset.busy = pending > 0 ? 'true' : 'false';
    if (pending === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      waiters.forEach((resolve) => resolve());
    }
  }

  function whenIdle() {
    return pending === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve));
  }

  // --- the API client ------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, details, body) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details;
      this.body = body;
    }
  }

  async function api(method, path, options) {
    const opts = options || {};
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(opts.query || {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value));
    }
    const headers = { Accept: 'application/json', Authorization: 'Bearer ' + state.token };
    const init = { method, headers, credentials: 'omit', cache: 'no-store' };
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    track(1);
    try {
      let resp;
      try {
        resp = await fetch(url.toString(), init);
      } catch (err) {
        throw new ApiError(0, 'network_error', 'The hub could not be reached. Check the connection and try again.');
      }
      const text = await resp.text();
      let body = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch (err) {
        body = null;
      }
      if (!resp.ok || !body || body.success !== true) {
        const e = (body && body.error) || {};
        const message = e.message || ('The hub answered ' + resp.status + (resp.statusText ? ' ' + resp.statusText : '') + '.');
        const error = new ApiError(resp.status, e.code || 'http_' + resp.status, message, e.details, body);
        if (resp.status === 401 && !opts.keepSession) signedOut(message, true);
        throw error;
      }
      return { status: resp.status, data: body.data, message: body.message, body };
    } finally {
      track(-1);
    }
  }

  // --- notices -------------------------------------------------------------------------

  function notify(kind, text) {
    const box = $('#notices');
    const notice = h('div', { class: 'notice notice-' + kind, role: kind === 'error' ? 'alert' : 'status' },
      h('p', { text }),
      h('button', {
        type: 'button', class: 'btn btn-quiet btn-icon btn-small', 'aria-label': 'Dismiss',
        on: { click: () => notice.remove() },
      }, h('span', { 'aria-hidden': 'true', text: '×' })));
    box.append(notice);
    while (box.children.length > 4) box.firstElementChild.remove();
    return notice;
  }

  function clearNotices() {
    $('#notices').replaceChildren();
  }

  // --- session -------------------------------------------------------------------------

  function subjectOf(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
      return typeof claims.sub === 'string' ? claims.sub : null;
    } catch (err) {
      return null;
    }
  }

  function showLogin(message) {
    $('#dashboard').hidden = true;
    $('#session').hidden = true;
    $('#login').hidden = false;
    closeDialogs();
    const error = $('#login-error');
    error.hidden = !message;
    error.textContent = message || '';
    $('#login-token').value = '';
    $('#login-token').setAttribute('aria-invalid', message ? 'true' : 'false');
  }

  function signedOut(message, isError) {
    state.token = null;
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (err) { /* storage may be unavailable: nothing was kept then */ }
    state.integrations = new Map();
    state.daily = new Map();
    showLogin(isError ? message : '');
    if (!isError && message) notify('info', message);
    $('#login-token').focus();
  }

  // Two tokens for one user (a fresher token from the host application) replace each other
  // freely; a token for anyone else replaces the signed-in user only when asked to.
  function sameUser(a, b) {
    const sub = subjectOf(a);
    return sub !== null && sub === subjectOf(b);
  }

  async function offerSwitch(token) {
    const current = subjectOf(state.token) || 'unknown user';
    const next = subjectOf(token) || 'unknown user';
    closeDialogs();
    const accepted = await confirmDialog('Switch user?',
      'This link signs the dashboard in as “' + next + '”. You are signed in as “' + current + '”. '
      + 'Switch only if you meant to act as ' + next + ': everything you do next is done as that user.',
      'Switch to ' + next, 'Stay as ' + current);
    if (!accepted) {
      notify('info', 'Still signed in as ' + current + '. The link for ' + next + ' was not used.');
      return;
    }
    clearNotices();
    signIn(token);
    await loadAll();
  }

  function signIn(token) {
    state.token = token;
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch (err) { /* kept in memory for this page only */ }
    $('#login').hidden = true;
    $('#dashboard').hidden = false;
    $('#session').hidden = false;
    const who = subjectOf(token) || 'unknown user';
    $('#who').textContent = who;
    $('#who').title = who;
  }

  // --- loading -------------------------------------------------------------------------

  async function loadAll() {
    const cards = $('#cards');
    cards.setAttribute('aria-busy', 'true');
    try {
      const [catalogue, integrations] = await Promise.all([
        api('GET', '/api/providers'),
        api('GET', '/api/integrations'),
      ]);
      state.providers = catalogue.data.providers || [];
      setIntegrations(integrations.data || []);
      showPluginFailures(catalogue.data.failures || []);
      renderAll();
      document.getElementById('dashboard').dataset.ready = 'true';
      return true;
    } catch (err) {
      if (err.status !== 401) {
        cards.replaceChildren(h('p', { class: 'placeholder', text: 'The integrations could not be loaded.' }));
        notify('error', 'Could not load the integrations: ' + err.message);
      }
      return false;
    } finally {
      cards.setAttribute('aria-busy', 'false');
    }
  }

  function setIntegrations(list) {
    state.integrations = new Map(list.map((i) => [i.provider, i]));
  }

  async function reloadIntegrations(focus) {
    const resp = await api('GET', '/api/integrations');
    setIntegrations(resp.data || []);
    renderAll(focus);
  }

  function showPluginFailures(failures) {
    const el = $('#plugin-failures');
    el.hidden = failures.length === 0;
    el.textContent = failures.length
      ? 'Provider plugins that failed to load: ' + failures.map((f) => f.name + ' (' + f.error + ')').join('; ')
      : '';
  }

  const dailySeq = new Map();

  async function loadDaily(provider) {
    const days = state.chartDays.get(provider) || 7;
    const seq = (dailySeq.get(provider) || 0) + 1;
    dailySeq.set(provider, seq);
    let entry;
    try {
      const resp = await api('GET', pathOf(provider, 'stats/daily'), { query: { days } });
      entry = { days, data: resp.data, error: null };
    } catch (err) {
      if (err.status === 401) return;
      entry = { days, data: null, error: err.message };
    }
    if (dailySeq.get(provider) !== seq) return; // a newer request (another period) wins
    state.daily.set(provider, entry);
    updateChart(provider);
  }

  // --- cards ---------------------------------------------------------------------------

  const chartObserver = new ResizeObserver((entries) => {
    // Drawn on the next frame, never inside the observer callback (no resize loops).
    requestAnimationFrame(() => entries.forEach((entry) => drawChart(entry.target)));
  });

  function renderAll(focus) {
    renderCards(focus);
    renderConnectNew();
    renderConsolePickers();
  }

  function renderCards(focus) {
    const container = $('#cards');
    const active = document.activeElement;
    let wanted = focus || null;
    if (!wanted && active && container.contains(active) && active.dataset.key) wanted = [active.dataset.key];
    chartObserver.disconnect();
    if (state.providers.length === 0) {
      container.replaceChildren(h('p', { class: 'placeholder', text: 'No providers are enabled on this hub.' }));
      return;
    }
    container.replaceChildren(...state.providers.map(card));
    for (const box of container.querySelectorAll('.chart-box')) chartObserver.observe(box);
    for (const p of state.providers) {
      if (!state.integrations.has(p.name)) continue;
      updateChart(p.name); // what is known already, then fresh numbers
      loadDaily(p.name);
    }
    if (wanted) focusFirst(wanted);
  }

  function focusFirst(keys) {
    for (const key of keys) {
      const el = document.querySelector('[data-key="' + CSS.escape(key) + '"]');
      if (el && !el.disabled && !el.closest('[hidden]')) {
        el.focus();
        return;
      }
    }
  }

  function accountLines(integration) {
    const a = integration.account || {};
    const lines = [];
    if (a.email) lines.push(['Account', a.email]);
    if (a.teamName) {
      let host = null;
      try {
        host = a.url ? new URL(a.url).host : null;
      } catch (err) {
        host = null;
      }
      lines.push(['Workspace', host ? a.teamName + ' · ' + host : a.teamName]);
    }
    if (a.username) lines.push(['Member', '@' + a.username + (a.fullName ? ' (' + a.fullName + ')' : '')]);
    if (lines.length === 0 && (a.accountName || a.accountId)) lines.push(['Account', a.accountName || a.accountId]);
    return lines;
  }

  function statsText(integration) {
    const st = integration.stats;
    if (!st) return null;
    const period = (st.period || '').toLowerCase();
    if (!st.totalRequests) return 'No requests yet' + (period ? ' · ' + period : '');
    const noun = st.totalRequests === 1 ? ' request, ' : ' requests, ';
    return st.totalRequests + noun + percentText(st.successRate) + ' success' + (period ? ' · ' + period : '');
  }

  function button(label, key, handler, extra) {
    const opts = extra || {};
    return h('button', {
      type: 'button',
      class: 'btn btn-small' + (opts.variant ? ' btn-' + opts.variant : ''),
      dataset: { key, action: opts.action || '', provider: opts.provider || '' },
      disabled: opts.disabled,
      'aria-describedby': opts.describedBy,
      on: opts.disabled ? undefined : { click: handler },
    }, label);
  }

  function card(provider) {
    const p = provider.name;
    const integration = state.integrations.get(p);
    const status = integration ? integration.status : 'NONE';
    const titleId = 'card-title-' + p;
    const article = h('article', {
      class: 'card status-' + status.toLowerCase(),
      dataset: { provider: p, status },
      'aria-labelledby': titleId,
    });

    const headTitle = h('div', { class: 'card-title' },
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      h('h3', { id: titleId, tabindex: '-1', dataset: { key: p + ':title' } }, provider.title),
      h('span', { class: 'badge', dataset: { status }, text: STATUS_LABELS[status] || status }));
    const head = h('header', { class: 'card-head' }, headTitle);
    if (integration && integration.lastSyncAt) {
      head.append(h('p', { class: 'card-sync' }, 'Last sync: ', timeEl(integration.lastSyncAt)));
    } else if (integration) {
      head.append(h('p', { class: 'card-sync', text: 'Last sync: never' }));
    }

    const main = h('div', { class: 'card-main' }, head);

    if (!integration) {
      main.append(h('p', { class: 'card-desc', text: provider.description || '' }));
    } else {
      const facts = h('dl', { class: 'facts' });
      for (const [label, value] of accountLines(integration)) {
        facts.append(h('div', { class: 'fact', dataset: { field: 'account' } }, h('dt', { text: label }), h('dd', { text: value })));
      }
      const stats = statsText(integration);
      if (stats) facts.append(h('div', { class: 'fact', dataset: { field: 'stats' } }, h('dt', { text: 'Activity' }), h('dd', { text: stats })));
      if (integration.connectedAt) {
        facts.append(h('div', { class: 'fact' }, h('dt', { text: 'Connected' }), h('dd', {}, timeEl(integration.connectedAt))));
      }
      if (integration.tokenExpiresAt && status !== 'INACTIVE') {
        const expires = Date.parse(integration.tokenExpiresAt) > Date.now() ? 'expires ' : 'expired ';
        facts.append(h('div', { class: 'fact' }, h('dt', { text: 'Token' }),
          h('dd', {}, expires, timeEl(integration.tokenExpiresAt),
            integration.hasRefreshToken ? ' · refreshed automatically' : '')));
      }
      main.append(facts);
      if (status !== 'ACTIVE' && integration.statusReason) {
        main.append(h('p', { class: 'card-reason', dataset: { field: 'reason' } }, capitalise(integration.statusReason) + '.'));
      }
    }

    const actions = h('div', { class: 'card-actions' });
    const opts = (action, variant, extra) => Object.assign({ action, provider: p, variant }, extra || {});
    if (!integration || status === 'INACTIVE' || status === 'ERROR') {
      const label = integration ? 'Connect again' : 'Connect';
      const reasonId = 'connect-reason-' + p;
      actions.append(button(label, p + ':connect', (ev) => connect(p, ev.currentTarget),
        opts('connect', 'primary', provider.configured ? {} : { disabled: true, describedBy: reasonId })));
      if (!provider.configured) {
        main.append(h('p', { class: 'card-reason', id: reasonId },
          'Not configured on this hub: ' + (provider.problems || []).join('; ')));
      }
    }
    if (integration) {
      if (status === 'ACTIVE' || status === 'EXPIRED' || status === 'ERROR') {
        actions.append(button('Disconnect', p + ':disconnect', () => disconnect(p), opts('disconnect', 'danger-quiet')));
      }
      actions.append(button('View logs', p + ':logs', (ev) => openLogs(p, ev.currentTarget), opts('logs')));
      if (status === 'EXPIRED' && integration.hasRefreshToken) {
        actions.append(button('Refresh token', p + ':refresh', () => refresh(p), opts('refresh')));
      }
      if (status === 'ACTIVE') {
        actions.append(button('Check connection', p + ':check', () => checkStatus(p), opts('check', 'quiet')));
        actions.append(button('Pause', p + ':pause', () => setStatus(p, 'INACTIVE'), opts('pause', 'quiet')));
      }
      if (status === 'INACTIVE') {
        // Paused integrations keep their credentials and can resume; disconnected ones
        // had them revoked and need a new connect (offered above).
        if (integration.hasCredentials) {
          actions.append(button('Resume', p + ':resume', () => setStatus(p, 'ACTIVE'), opts('resume')));
        }
        actions.append(button('Delete', p + ':delete', () => remove(p), opts('delete', 'danger-quiet')));
      }
    }
    main.append(actions);
    article.append(main);
    article.append(integration ? chartSection(p) : idleChart(provider));
    return article;
  }

  function idleChart(provider) {
    return h('div', { class: 'card-chart card-chart-idle' },
      h('p', { class: 'muted', text: provider.configured
        ? 'Requests per day appear here once ' + provider.title + ' is connected.'
        : provider.title + ' needs credentials in the hub configuration before it can be connected.' }));
  }

  // --- charts --------------------------------------------------------------------------

  function chartSection(provider) {
    const days = state.chartDays.get(provider) || 7;
    const headingId = 'chart-title-' + provider;
    const toggle = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Chart period' });
    for (const n of [7, 30]) {
      toggle.append(h('button', {
        type: 'button', class: 'segment', 'aria-pressed': String(n === days),
        dataset: { key: provider + ':days' + n, days: String(n) },
        on: { click: () => switchDays(provider, n) },
      }, n + ' days'));
    }
    return h('div', { class: 'card-chart chart', dataset: { provider } },
      h('div', { class: 'chart-head' }, h('h4', { id: headingId, text: 'Requests per day' }), toggle),
      h('div', { class: 'chart-box', dataset: { provider }, role: 'img', 'aria-labelledby': headingId + ' ' + 'chart-sum-' + provider }),
      h('div', { class: 'chart-foot' },
        h('span', { class: 'legend' },
          h('span', { class: 'swatch swatch-ok', 'aria-hidden': 'true' }), 'Successful',
          h('span', { class: 'swatch swatch-fail', 'aria-hidden': 'true' }), 'Failed'),
        h('span', { class: 'chart-sum muted', id: 'chart-sum-' + provider, text: 'Loading…' })));
  }

  function switchDays(provider, days) {
    state.chartDays.set(provider, days);
    const section = document.querySelector('.chart[data-provider="' + CSS.escape(provider) + '"]');
    if (section) {
      for (const b of section.querySelectorAll('.segment')) b.setAttribute('aria-pressed', String(b.dataset.days === String(days)));
    }
    loadDaily(provider);
  }

  function updateChart(provider) {
    const section = document.querySelector('.chart[data-provider="' + CSS.escape(provider) + '"]');
    if (!section) return;
    const entry = state.daily.get(provider);
    const sum = section.querySelector('.chart-sum');
    const box = section.querySelector('.chart-box');
    if (!entry) return;
    if (entry.error) {
      sum.textContent = 'Could not load: ' + entry.error;
    } else {
      const list = entry.data.days || [];
      const ok = list.reduce((n, d) => n + d.successful, 0);
      const bad = list.reduce((n, d) => n + d.failed, 0);
      sum.textContent = (ok + bad) + ' requests, ' + bad + ' failed · ' + (entry.data.period || '').toLowerCase();
    }
    box.dataset.drawn = '';
    drawChart(box);
  }

  function niceStep(raw) {
    const power = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  function dayLabel(iso, long) {
    const d = new Date(iso + 'T00:00:00Z');
    return long
      ? d.toLocaleDateString('en', { weekday: 'short', timeZone: 'UTC' })
      : d.toLocaleDateString('en', { month: 'short', day: 'numeric', timeZone: 'UTC' });
  }

  function drawChart(box) {
    if (!box.isConnected) return;
    const entry = state.daily.get(box.dataset.provider);
    const width = Math.floor(box.clientWidth);
    if (!width) return;
    const signature = width + ':' + (entry && entry.data ? JSON.stringify(entry.data.days) : entry ? 'error' : 'none');
    if (box.dataset.drawn === signature) return;
    box.dataset.drawn = signature;
    if (!entry || !entry.data) {
      box.replaceChildren(h('p', { class: 'chart-empty muted', text: entry ? 'No chart data.' : 'Loading…' }));
      return;
    }
    const days = entry.data.days || [];
    const height = 168;
    const m = { top: 10, right: 4, bottom: 24, left: 30 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const peak = Math.max(0, ...days.map((d) => d.successful + d.failed));
    const step = niceStep(Math.max(peak, 4) / 4);
    const top = Math.max(step * Math.ceil(peak / step), step * 2);
    const y = (v) => m.top + plotH - (v / top) * plotH;
    const band = plotW / Math.max(days.length, 1);
    const barW = Math.max(2, Math.min(36, band * (days.length > 10 ? 0.7 : 0.55)));

    const root = s('svg', {
      width, height, viewBox: '0 0 ' + width + ' ' + height, class: 'chart-svg', 'aria-hidden': 'true', focusable: 'false',
    });
    for (let v = 0; v <= top; v += step) {
      root.append(s('line', { class: v === 0 ? 'axis' : 'grid', x1: m.left, x2: width - m.right, y1: y(v), y2: y(v) }));
      root.append(s('text', { class: 'tick', x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
    }
    const every = days.length <= 7 ? 1 : Math.ceil(days.length / Math.max(2, Math.floor(plotW / 64)));
    days.forEach((d, i) => {
      const x = m.left + band * i + (band - barW) / 2;
      const g = s('g', { class: 'day' }, s('title', {}, dayLabel(d.date, false) + ': ' + d.successful + ' successful, ' + d.failed + ' failed'));
      if (d.successful > 0) {
        g.append(s('rect', { class: 'bar-ok', x, width: barW, y: y(d.successful), height: Math.max(1, y(0) - y(d.successful)), rx: 1.5 }));
      }
      if (d.failed > 0) {
        const base = y(d.successful);
        g.append(s('rect', { class: 'bar-fail', x, width: barW, y: base - (y(0) - y(d.failed)), height: Math.max(1, y(0) - y(d.failed)), rx: 1.5 }));
      }
      // an invisible full-height target so the tooltip works on empty days too
      g.append(s('rect', { class: 'hit', x: m.left + band * i, width: band, y: m.top, height: plotH }));
      root.append(g);
      // every day when there are few; otherwise every few days, counted back from today
      if ((days.length - 1 - i) % every === 0) {
        root.append(s('text', { class: 'tick', x: m.left + band * i + band / 2, y: height - 6, 'text-anchor': 'middle' },
          dayLabel(d.date, days.length <= 7)));
      }
    });
    box.replaceChildren(root);
  }

  // --- connect and lifecycle -----------------------------------------------------------

  function returnUrl() {
    return window.location.origin + window.location.pathname;
  }

  async function connect(provider, btn) {
    const label = btn.textContent;
    btn.disabled = true;
    btn.textContent = 'Connecting…';
    try {
      await whenIdle();
      const target = new URL(await connectUrl(provider));
      if (target.protocol !== 'https:' && target.protocol !== 'http:') throw new ApiError(0, 'bad_url', 'the hub answered an unusable authorization URL');
      await whenIdle(); // leave nothing in flight behind
      window.location.assign(target.toString());
    } catch (err) {
      btn.disabled = false;
      btn.textContent = label;
      if (err.status !== 401) notify('error', 'Could not start connecting ' + titleOf(provider) + ': ' + err.message);
    }
  }

  // Where the browser goes to connect: the provider's authorization URL, or, on a hub that
  // allows connecting only through connect sessions (security.allow_direct_connect: false),
  // the link of a session for this provider, which brings the browser back here.
  async function connectUrl(provider) {
    try {
      const resp = await api('GET', pathOf(provider, 'connect'), { query: { return_url: returnUrl() } });
      return resp.data.authUrl;
    } catch (err) {
      if (err.code !== 'direct_connect_disabled') throw err;
    }
    const made = await api('POST', '/api/connect-sessions', { body: { providers: [provider], return_url: returnUrl() } });
    return made.data.url;
  }

  async function lifecycle(provider, run, done, focus) {
    try {
      await run();
      await reloadIntegrations(focus);
      if (done) notify('success', done);
    } catch (err) {
      if (err.status === 401) return;
      notify('error', titleOf(provider) + ': ' + err.message);
      try {
        await reloadIntegrations(focus);
      } catch (again) { /* the first message says enough */ }
    }
  }

  async function disconnect(provider) {
    const title = titleOf(provider);
    const ok = await confirmDialog('Disconnect ' + title + '?',
      'The hub revokes its tokens at ' + title + ' and forgets them. The activity history stays. You can connect again at any time.',
      'Disconnect');
    if (!ok) return focusFirst([provider + ':disconnect']);
    await lifecycle(provider, () => api('DELETE', pathOf(provider, 'disconnect')),
      title + ' was disconnected; its tokens were revoked.', [provider + ':connect', provider + ':title']);
  }

  async function remove(provider) {
    const title = titleOf(provider);
    const ok = await confirmDialog('Delete the ' + title + ' integration?',
      'It disappears from this dashboard. Its activity is kept on the hub for auditing.', 'Delete');
    if (!ok) return focusFirst([provider + ':delete']);
    await lifecycle(provider, () => api('DELETE', pathOf(provider)),
      title + ' was deleted.', [provider + ':connect', provider + ':title']);
  }

  function setStatus(provider, status) {
    const title = titleOf(provider);
    return lifecycle(provider, () => api('PATCH', pathOf(provider, 'status'), { body: { status } }),
      status === 'ACTIVE' ? title + ' is active again.' : title + ' is paused; its tokens are kept.',
      [provider + (status === 'ACTIVE' ? ':pause' : ':resume'), provider + ':title']);
  }

  function refresh(provider) {
    return lifecycle(provider, () => api('POST', pathOf(provider, 'refresh')),
      titleOf(provider) + ': the token was refreshed.', [provider + ':check', provider + ':title']);
  }

  function checkStatus(provider) {
    return lifecycle(provider, () => api('GET', pathOf(provider, 'status')),
      titleOf(provider) + ' answered: the connection works.', [provider + ':check', provider + ':title']);
  }

  // --- "connect new integration" -------------------------------------------------------

  function renderConnectNew() {
    const list = $('#connect-new-list');
    const open = state.providers.filter((p) => !state.integrations.has(p.name));
    list.replaceChildren(...open.map((p) => {
      const reasonId = 'new-reason-' + p.name;
      return h('li', { class: 'connect-item', dataset: { provider: p.name } },
        h('div', {},
          h('strong', { text: p.title }),
          h('p', { class: 'muted', text: p.description || '' }),
          p.configured ? null : h('p', { class: 'card-reason', id: reasonId, text: 'Not configured: ' + (p.problems || []).join('; ') })),
        button('Connect', 'new:' + p.name, (ev) => connect(p.name, ev.currentTarget),
          { action: 'connect', provider: p.name, variant: 'primary', disabled: !p.configured, describedBy: p.configured ? null : reasonId }));
    }));
    if (open.length === 0) list.append(h('li', { class: 'muted', text: 'Every available provider is connected.' }));
  }

  function toggleConnectNew(open) {
    const btn = $('#connect-new-toggle');
    const panel = $('#connect-new-panel');
    const show = open === undefined ? panel.hidden : open;
    panel.hidden = !show;
    btn.setAttribute('aria-expanded', String(show));
    if (show) {
      const first = panel.querySelector('button:not([disabled])');
      if (first) first.focus();
    }
  }

  // --- dialogs -------------------------------------------------------------------------

  function closeDialogs() {
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
  }

  function confirmDialog(title, text, confirmLabel, cancelLabel) {
    const dialog = $('#confirm-dialog');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-ok').textContent = confirmLabel;
    $('#confirm-cancel').textContent = cancelLabel || 'Cancel';
    return new Promise((resolve) => {
      const finish = () => {
        dialog.removeEventListener('close', finish);
        resolve(dialog.returnValue === 'ok');
      };
      dialog.returnValue = '';
      dialog.addEventListener('close', finish);
      dialog.showModal();
      $('#confirm-cancel').focus();
    });
  }

  // --- activity (logs) -----------------------------------------------------------------

  const logs = { provider: null, cursors: [null], index: 0, next: null, seq: 0, opener: null };

  function openLogs(provider, opener) {
    const p = state.providers.find((x) => x.name === provider);
    logs.provider = provider;
    logs.opener = opener;
    logs.cursors = [null];
    logs.index = 0;
    logs.next = null;
    $('#logs-title').textContent = titleOf(provider) + ' activity';
    $('#logs-status').value = '';
    const actions = new Set([...(p ? p.actions.map((a) => a.name) : []), ...CORE_ACTIONS]);
    $('#logs-action').replaceChildren(h('option', { value: '', text: 'All actions' }),
      ...[...actions].map((name) => h('option', { value: name, text: name })));
    $('#logs-body').replaceChildren();
    $('#logs-summary').replaceChildren();
    $('#logs-empty').hidden = true;
    $('#logs-dialog').showModal();
    $('#logs-status').focus();
    loadLogs();
    loadLogSummary(provider);
  }

  async function loadLogSummary(provider) {
    const box = $('#logs-summary');
    try {
      const st = (await api('GET', pathOf(provider, 'stats'), { query: { days: 7 } })).data;
      if (logs.provider !== provider) return;
      const items = [
        [st.period, st.totalRequests + ' requests'],
        ['Success rate', st.successRate],
        ['Failed', String(st.failedRequests)],
        ['Average', st.averageDuration + ' ms'],
        ['p50 / p95', st.p50Duration + ' / ' + st.p95Duration + ' ms'],
      ];
      const top = (st.actionBreakdown || []).slice(0, 3).map((a) => a.action + ' ' + a.count).join(', ');
      if (top) items.push(['Top actions', top]);
      box.replaceChildren(h('dl', { class: 'summary' },
        ...items.map(([k, v]) => h('div', {}, h('dt', { text: k }), h('dd', { text: v })))));
    } catch (err) {
      if (err.status !== 401 && logs.provider === provider) {
        box.replaceChildren(h('p', { class: 'muted', text: 'Statistics unavailable: ' + err.message }));
      }
    }
  }

  async function loadLogs() {
    const seq = ++logs.seq;
    const table = $('#logs-table');
    const error = $('#logs-error');
    table.setAttribute('aria-busy', 'true');
    $('#logs-prev').disabled = true;
    $('#logs-next').disabled = true;
    try {
      const resp = await api('GET', pathOf(logs.provider, 'logs'), {
        query: {
          status: $('#logs-status').value,
          action: $('#logs-action').value,
          limit: LOG_PAGE_SIZE,
          cursor: logs.cursors[logs.index],
        },
      });
      if (seq !== logs.seq) return;
      error.hidden = true;
      const items = resp.data.items || [];
      logs.next = resp.data.nextCursor || null;
      $('#logs-body').replaceChildren(...items.map(logRow));
      $('#logs-empty').hidden = items.length > 0;
    } catch (err) {
      if (seq !== logs.seq || err.status === 401) return;
      error.textContent = 'Could not load the activity: ' + err.message;
      error.hidden = false;
      $('#logs-body').replaceChildren();
      logs.next = null;
    } finally {
      if (seq === logs.seq) {
        table.setAttribute('aria-busy', 'false');
        updatePager();
      }
    }
  }

  function updatePager() {
    const prev = $('#logs-prev');
    const next = $('#logs-next');
    const focused = document.activeElement;
    prev.disabled = logs.index === 0;
    next.disabled = !logs.next;
    $('#logs-page').textContent = 'Page ' + (logs.index + 1);
    // A pager button that just became disabled must not swallow the focus.
    if (focused === prev && prev.disabled && !next.disabled) next.focus();
    else if (focused === next && next.disabled && !prev.disabled) prev.focus();
    else if ((focused === prev || focused === next) && focused.disabled) $('#logs-status').focus();
  }

  function logDetails(item) {
    const parts = [];
    if (item.kind === 'transition' && item.requestData) {
      const r = item.requestData;
      parts.push(h('span', { class: 'transition' }, (r.from || 'none') + ' → ' + r.to + (r.reason ? ': ' + r.reason : '')));
    }
    if (item.errorMessage) parts.push(h('span', { class: 'error-text', text: item.errorMessage }));
    const payload = {};
    if (item.requestData !== null && item.requestData !== undefined && item.kind !== 'transition') payload.request = item.requestData;
    if (item.responseData !== null && item.responseData !== undefined) payload.response = item.responseData;
    if (Object.keys(payload).length) {
      parts.push(h('details', { class: 'payload' },
        h('summary', { text: 'Request and response' }),
        h('pre', { class: 'code', text: JSON.stringify(payload, null, 2) })));
    }
    if (parts.length === 0) parts.push(h('span', { class: 'muted', text: '—' }));
    return parts;
  }

  function logRow(item) {
    return h('tr', { dataset: { id: String(item.id), action: item.action, status: item.status, kind: item.kind } },
      h('td', { class: 'nowrap' }, h('time', { datetime: item.createdAt, title: item.createdAt, text: fullTime(item.createdAt) })),
      h('td', { class: 'nowrap' }, h('code', { class: 'log-action', text: item.action }),
        item.kind === 'transition' ? h('span', { class: 'kind', text: 'lifecycle' }) : null),
      h('td', {}, h('span', { class: 'pill', dataset: { status: item.status }, text: item.status })),
      h('td', { class: 'num nowrap', text: item.durationMs === null || item.durationMs === undefined ? '—' : item.durationMs + ' ms' }),
      h('td', { class: 'details' }, logDetails(item)));
  }

  // --- the action console --------------------------------------------------------------

  const consoleState = { provider: null, action: null, fields: [] };

  function renderConsolePickers() {
    const providerSelect = $('#console-provider');
    const connected = state.providers.filter((p) => state.integrations.has(p.name));
    const previous = consoleState.provider;
    providerSelect.replaceChildren(...connected.map((p) => {
      const i = state.integrations.get(p.name);
      return h('option', { value: p.name, text: p.title + (i.status === 'ACTIVE' ? '' : ' (' + STATUS_LABELS[i.status] + ')') });
    }));
    const none = connected.length === 0;
    $('#console-empty').hidden = !none;
    $('#console-form').hidden = none;
    $('#console-result').hidden = $('#console-result').hidden || none;
    if (none) {
      consoleState.provider = null;
      consoleState.action = null;
      $('#console-action').replaceChildren();
      $('#console-fields').replaceChildren();
      $('#console-endpoint').hidden = true;
      return;
    }
    const keep = connected.find((p) => p.name === previous);
    const firstActive = connected.find((p) => state.integrations.get(p.name).status === 'ACTIVE');
    const chosen = (keep || firstActive || connected[0]).name;
    providerSelect.value = chosen;
    if (chosen !== previous) chooseProvider(chosen);
  }

  function chooseProvider(name) {
    consoleState.provider = name;
    const p = state.providers.find((x) => x.name === name);
    const select = $('#console-action');
    select.replaceChildren(...(p ? p.actions : []).map((a) => h('option', { value: a.name, text: a.name + ' — ' + a.summary })));
    chooseAction(p && p.actions.length ? p.actions[0].name : null);
  }

  function currentAction() {
    const p = state.providers.find((x) => x.name === consoleState.provider);
    return p ? p.actions.find((a) => a.name === consoleState.action) || null : null;
  }

  function pathParams(action) {
    return [...action.path.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]);
  }

  function fieldKind(spec) {
    const types = Array.isArray(spec.type) ? spec.type.filter((t) => t !== 'null') : [spec.type];
    const type = types.length === 1 ? types[0] : undefined;
    if (Array.isArray(spec.enum)) return 'enum';
    if (type === 'boolean') return 'boolean';
    if (type === 'integer') return 'integer';
    if (type === 'number') return 'number';
    if (type === 'string') return 'string';
    if (type === 'array') {
      const items = spec.items || {};
      const itemType = items.type;
      if (Array.isArray(items.enum) || itemType === 'string' || itemType === 'integer' || itemType === 'number') return 'list';
      return 'json';
    }
    if (type === 'object') return 'json';
    return 'flex'; // oneOf / anyOf without a single type: JSON when it parses, else text
  }

  function chooseAction(name) {
    consoleState.action = name;
    $('#console-action').value = name || '';
    const action = currentAction();
    const box = $('#console-fields');
    consoleState.fields = [];
    $('#console-result').hidden = true;
    if (!action) {
      box.replaceChildren();
      $('#console-endpoint').hidden = true;
      return;
    }
    $('#console-endpoint').hidden = false;
    $('#console-method').textContent = action.method;
    $('#console-method').dataset.method = action.method;
    // Let a long route wrap after its slashes rather than inside a word.
    $('#console-route').replaceChildren(...action.path.split('/').flatMap((part, i) => (i ? [h('wbr'), '/' + part] : [part])));
    $('#console-summary').textContent = action.summary || '';
    const schema = action.inputSchema || {};
    const props = schema.properties || {};
    const required = new Set(schema.required || []);
    const inPath = pathParams(action);
    const names = Object.keys(props);
    names.sort((a, b) => rank(a) - rank(b));
    function rank(n) {
      return inPath.includes(n) ? 0 : required.has(n) ? 1 : 2;
    }
    const rows = names.map((n) => consoleField(n, props[n], required.has(n), inPath.includes(n)));
    if (rows.length === 0) rows.push(h('p', { class: 'muted', text: 'This action takes no input.' }));
    const notes = [];
    if (schema.anyOf && schema.anyOf.every((c) => Array.isArray(c.required))) {
      notes.push('Give at least one of: ' + schema.anyOf.map((c) => c.required.join(' + ')).join(', ') + '.');
    }
    if (inPath.length && schema.minProperties > inPath.length) notes.push('Set at least one field besides the path.');
    box.replaceChildren(...rows, ...notes.map((t) => h('p', { class: 'hint', text: t })));
  }

  function consoleField(name, spec, required, inPath) {
    const kind = fieldKind(spec);
    const id = 'console-field-' + name;
    const hintId = id + '-hint';
    const errorId = id + '-error';
    const hints = [];
    if (inPath) hints.push('part of the path');
    if (spec.description) hints.push(spec.description);
    if (kind === 'list') {
      const items = spec.items || {};
      hints.push('comma-separated' + (Array.isArray(items.enum) ? ': ' + items.enum.join(', ') : ''));
    }
    if (kind === 'json') hints.push('JSON');
    if (kind === 'flex' && Array.isArray(spec.oneOf)) {
      hints.push(spec.oneOf.map((o) => (o.enum ? o.enum.join(' / ') : o.type || 'value')).join(' or '));
    }
    if (spec.format === 'date-time' && !spec.description) hints.push('RFC 3339, e.g. 2026-03-30T09:00:00+02:00');
    if (spec.minimum !== undefined && spec.maximum !== undefined) hints.push(spec.minimum + '–' + spec.maximum);
    if (spec.default !== undefined) hints.push('default: ' + JSON.stringify(spec.default));
    const common = {
      id, name, 'aria-describedby': hintId + ' ' + errorId, 'aria-required': required ? 'true' : null,
      dataset: { field: name, kind },
    };
    let control;
    if (kind === 'enum' || kind === 'boolean') {
      const values = kind === 'boolean' ? [true, false] : spec.enum;
      control = h('select', common,
        h('option', { value: '', text: required ? 'Choose…' : '(not set)' }),
        ...values.map((v) => h('option', { value: JSON.stringify(v), text: String(v) })));
    } else if (kind === 'json' || (kind === 'string' && (spec.maxLength || 0) > 4096)) {
      control = h('textarea', Object.assign({ rows: kind === 'json' ? 4 : 3, spellcheck: kind === 'json' ? 'false' : null }, common));
      if (kind === 'json') control.placeholder = spec.type === 'array' ? '[ … ]' : '{ … }';
    } else {
      const attrs = Object.assign({ type: 'text', autocomplete: 'off', spellcheck: 'false' }, common);
      if (kind === 'integer' || kind === 'number') {
        attrs.type = 'number';
        attrs.inputmode = kind === 'integer' ? 'numeric' : 'decimal';
        attrs.step = kind === 'integer' ? '1' : 'any';
        if (spec.minimum !== undefined) attrs.min = spec.minimum;
        if (spec.maximum !== undefined) attrs.max = spec.maximum;
      }
      control = h('input', attrs);
      if (spec.default !== undefined && typeof spec.default !== 'object') control.placeholder = String(spec.default);
    }
    consoleState.fields.push({ name, kind, spec, control, inPath, required });
    return h('div', { class: 'field' + (kind === 'json' || control.tagName === 'TEXTAREA' ? ' field-wide' : '') },
      h('label', { for: id },
        h('code', { text: name }),
        required ? h('span', { class: 'req' }, h('span', { 'aria-hidden': 'true', text: ' *' }), h('span', { class: 'visually-hidden', text: ' (required)' })) : null,
        inPath ? h('span', { class: 'tag', text: 'path' }) : null),
      control,
      h('p', { class: 'hint', id: hintId, text: hints.join(' · ') }),
      h('p', { class: 'field-error', id: errorId, hidden: true }));
  }

  function coerce(raw, type) {
    if (type === 'integer' || type === 'number') {
      const n = Number(raw);
      return raw.trim() !== '' && Number.isFinite(n) ? n : raw;
    }
    return raw;
  }

  /** The form as the action's input: {values, problems}. Empty fields are left out. */
  function collectInput() {
    const values = {};
    const problems = [];
    for (const f of consoleState.fields) {
      const raw = f.control.value;
      if (raw.trim() === '') continue;
      switch (f.kind) {
        case 'enum':
        case 'boolean':
          values[f.name] = JSON.parse(raw);
          break;
        case 'integer':
        case 'number':
          values[f.name] = coerce(raw, f.kind);
          break;
        case 'list': {
          const itemType = (f.spec.items || {}).type;
          values[f.name] = raw.split(',').map((x) => x.trim()).filter(Boolean).map((x) => coerce(x, itemType));
          break;
        }
        case 'json':
          try {
            values[f.name] = JSON.parse(raw);
          } catch (err) {
            problems.push({ field: f.name, problem: 'is not valid JSON (' + err.message + ')' });
          }
          break;
        case 'flex':
          try {
            values[f.name] = JSON.parse(raw);
          } catch (err) {
            values[f.name] = raw.trim();
          }
          break;
        default:
          values[f.name] = f.control.tagName === 'TEXTAREA' ? raw : raw.trim();
      }
    }
    return { values, problems };
  }

  function showFieldProblems(problems) {
    for (const f of consoleState.fields) {
      const el = document.getElementById('console-field-' + f.name + '-error');
      el.hidden = true;
      el.textContent = '';
      f.control.removeAttribute('aria-invalid');
    }
    let first = null;
    for (const p of problems) {
      const top = String(p.field || '').split('.')[0];
      const f = consoleState.fields.find((x) => x.name === top);
      if (!f) continue;
      const el = document.getElementById('console-field-' + f.name + '-error');
      // Under its own label the field's name goes without saying; a nested path does not.
      const text = capitalise(p.field === f.name ? p.problem : p.field + ': ' + p.problem) + '.';
      el.textContent = (el.textContent ? el.textContent + ' ' : '') + text;
      el.hidden = false;
      f.control.setAttribute('aria-invalid', 'true');
      first = first || f.control;
    }
    return first;
  }

  function showResult(ok, statusText, problems, body) {
    const result = $('#console-result');
    result.hidden = false;
    result.dataset.outcome = ok ? 'success' : 'error';
    $('#console-status').textContent = statusText;
    const list = $('#console-problems');
    list.replaceChildren(...(problems || []).map((p) => h('li', {}, h('code', { text: p.field }), ' ' + p.problem)));
    list.hidden = !problems || problems.length === 0;
    const out = $('#console-output');
    out.hidden = body === undefined;
    out.textContent = body === undefined ? '' : JSON.stringify(body, null, 2);
  }

  async function sendAction(ev) {
    ev.preventDefault();
    const action = currentAction();
    if (!action) return;
    const { values, problems } = collectInput();
    for (const name of pathParams(action)) {
      if (values[name] === undefined || values[name] === '') problems.push({ field: name, problem: 'is required (it is part of the path)' });
    }
    const first = showFieldProblems(problems);
    if (problems.length) {
      showResult(false, 'Not sent: fix the marked fields first.', problems, undefined);
      if (first) first.focus();
      return;
    }
    let path = action.path.replace(/\{([A-Za-z0-9_]+)\}/g, (_, k) => encodeURIComponent(String(values[k])));
    for (const name of pathParams(action)) delete values[name];
    const method = action.method.toUpperCase();
    const options = {};
    if (method === 'GET' || method === 'DELETE') {
      options.query = {};
      for (const [k, v] of Object.entries(values)) options.query[k] = Array.isArray(v) ? v.join(',') : String(v);
    } else {
      options.body = values;
    }
    const send = $('#console-send');
    send.disabled = true;
    send.textContent = 'Sending…';
    const provider = consoleState.provider;
    try {
      const resp = await api(method, path, options);
      showResult(true, resp.status + ' · ' + (resp.message || 'OK'), [], resp.data);
    } catch (err) {
      if (err.status === 401) return;
      const seen = new Set();
      const problems = err.details && Array.isArray(err.details.problems) ? err.details.problems : [];
      const details = problems.filter((d) => {
        const key = d && d.field ? d.field + '\u0000' + d.problem : null;
        if (!key || seen.has(key)) return false;
        seen.add(key);
        return true;
      });
      showFieldProblems(details);
      const status = err.status ? err.status + ' · ' : '';
      showResult(false, status + err.message, details, err.body ? err.body.error : undefined);
    } finally {
      send.disabled = false;
      send.textContent = 'Send request';
    }
    // The call changed the statistics (and maybe the integration's state).
    if (state.token) {
      try {
        await reloadIntegrations();
      } catch (err) {
        if (err.status !== 401) notify('error', 'Could not refresh ' + titleOf(provider) + ': ' + err.message);
      }
    }
  }

  // --- start-up ------------------------------------------------------------------------

  function takeUrlState() {
    const hash = new URLSearchParams(window.location.hash.replace(/^#/, ''));
    const query = new URLSearchParams(window.location.search);
    const token = hash.get('token');
    const outcome = query.get('provider') && query.get('status')
      ? { provider: query.get('provider'), status: query.get('status'), error: query.get('error') }
      : null;
    if (token || outcome || window.location.hash || window.location.search) {
      // The token must not linger in the address bar, the history or a bookmark.
      history.replaceState(null, '', window.location.pathname);
    }
    return { token, outcome };
  }

  const ERROR_TEXT = {
    access_denied: 'access was declined',
    state_expired: 'the sign-in took too long; start again',
    state_replayed: 'that link was already used; start again',
    invalid_state: 'the request could not be matched to this hub; start again',
  };

  function announceOutcome(outcome) {
    if (!outcome) return;
    const title = titleOf(outcome.provider);
    if (outcome.status === 'connected') {
      notify('success', title + ' is connected.');
    } else {
      const why = ERROR_TEXT[outcome.error] || (outcome.error ? 'the provider reported “' + outcome.error + '”' : 'it did not complete');
      notify('error', title + ' was not connected: ' + why + '.');
    }
  }

  async function start() {
    const { token, outcome } = takeUrlState();
    let stored = null;
    try {
      stored = sessionStorage.getItem(TOKEN_KEY);
    } catch (err) {
      stored = null;
    }
    const jwt = token || stored;
    if (!jwt) {
      showLogin('');
      if (outcome) announceOutcome(outcome);
      return;
    }
    if (token && stored && !sameUser(token, stored)) {
      // Opened with someone else's token while signed in: stay who we are until asked.
      signIn(stored);
      await loadAll();
      await offerSwitch(token);
      return;
    }
    signIn(jwt);
    if (await loadAll()) announceOutcome(outcome);
  }

  function wire() {
    $('#login-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const value = $('#login-token').value.trim().replace(/^Bearer\s+/i, '');
      if (!value) {
        const error = $('#login-error');
        error.textContent = 'Paste an access token first.';
        error.hidden = false;
        $('#login-token').setAttribute('aria-invalid', 'true');
        $('#login-token').focus();
        return;
      }
      clearNotices();
      signIn(value);
      if (await loadAll()) $('#main').focus();
    });
    $('#sign-out').addEventListener('click', () => {
      clearNotices();
      signedOut('You are signed out.', false);
    });
    $('#reload').addEventListener('click', async () => {
      clearNotices();
      await loadAll();
    });
    $('#connect-new-toggle').addEventListener('click', () => toggleConnectNew());
    $('#connect-new-panel').addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.stopPropagation();
        toggleConnectNew(false);
        $('#connect-new-toggle').focus();
      }
    });
    $('#connect-new-toggle').addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && !$('#connect-new-panel').hidden) toggleConnectNew(false);
    });

    $('#console-provider').addEventListener('change', (ev) => chooseProvider(ev.target.value));
    $('#console-action').addEventListener('change', (ev) => chooseAction(ev.target.value));
    $('#console-form').addEventListener('submit', sendAction);

    const logsDialog = $('#logs-dialog');
    $('#logs-close').addEventListener('click', () => logsDialog.close());
    logsDialog.addEventListener('close', () => {
      logs.seq++;
      logs.provider = null;
      if (logs.opener && logs.opener.isConnected) logs.opener.focus();
      else if (logs.opener) focusFirst([logs.opener.dataset.key]);
    });
    logsDialog.addEventListener('click', (ev) => {
      if (ev.target === logsDialog) logsDialog.close(); // a click on the backdrop
    });
    const refilter = () => {
      logs.cursors = [null];
      logs.index = 0;
      loadLogs();
    };
    $('#logs-status').addEventListener('change', refilter);
    $('#logs-action').addEventListener('change', refilter);
    $('#logs-filters').addEventListener('submit', (ev) => ev.preventDefault());
    $('#logs-next').addEventListener('click', () => {
      if (!logs.next) return;
      logs.cursors = logs.cursors.slice(0, logs.index + 1);
      logs.cursors.push(logs.next);
      logs.index += 1;
      loadLogs();
    });
    $('#logs-prev').addEventListener('click', () => {
      if (logs.index === 0) return;
      logs.index -= 1;
      loadLogs();
    });

    const confirm = $('#confirm-dialog');
    $('#confirm-cancel').addEventListener('click', () => confirm.close(''));
    $('#confirm-ok').addEventListener('click', () => confirm.close('ok'));

    // A link to "#token=..." while this page is open changes only the fragment: no reload.
    window.addEventListener('hashchange', async () => {
      const { token } = takeUrlState();
      if (!token) return;
      if (state.token && !sameUser(token, state.token)) {
        await offerSwitch(token);
        return;
      }
      clearNotices();
      closeDialogs();
      signIn(token);
      await loadAll();
    });

    setInterval(refreshRelativeTimes, 30000);
  }

  function boot() {
    wire();
    start();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
