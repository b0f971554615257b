// Model Hub console: the realtime websocket (a session-minted token, renewed before it lapses), live
// updates of the page from dashboard:update, alert:new and deployment:status, and the charts (uPlot).
(() => {
  "use strict";
  const body = document.body;
  const live = document.getElementById("live");
  const csrf = () => JSON.parse(body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];

  function setLive(state, text) {
    if (!live) return;
    live.dataset.state = state;
    live.textContent = text;
  }

  // --- formatting (as the server renders it) ---------------------------------------------------
  const fmt = {
    money: (v) => (Math.abs(v) < 1 ? `$${Number(v).toFixed(4)}` : `$${Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`),
    ms: (v) => `${Math.round(v)} ms`,
    percent: (v) => `${(v * 100).toFixed(2)}%`,
    rating: (v) => Number(v).toFixed(2),
    plain: (v) => String(v),
  };
  const when = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "–");
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }
  function toast(text, severity) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const item = el("div", { class: `toast sev-${severity || "info"}`, role: "status" }, text);
    box.prepend(item);
    setTimeout(() => item.remove(), 8000);
  }

  // --- the websocket ---------------------------------------------------------------------------
  let socket = null;
  let renewTimer = null;
  let retries = 0;
  let expiresIn = 300;

  async function freshToken() {
    const response = await fetch(body.dataset.tokenUrl, {
      method: "POST",
      headers: { "X-CSRFToken": csrf() },
      credentials: "same-origin",
    });
    if (response.status === 401 || response.status === 403 || response.redirected) {
      location.reload(); // the session ended: the server sends the login page
      throw new Error("signed out");
    }
    if (!response.ok) throw new Error(`token: HTTP ${response.status}`);
    const data = await response.json();
    expiresIn = data.expiresIn;
    return data.token;
  }

  function reconnectLater() {
    retries = Math.min(retries + 1, 6);
    setTimeout(connect, 500 * 2 ** retries);
  }

  function renewBeforeExpiry() {
    clearTimeout(renewTimer);
    renewTimer = setTimeout(async () => {
      try {
        const token = await freshToken();
        socket.send(JSON.stringify({ type: "auth", token }));
      } catch (error) {
        if (socket) socket.close();
      }
    }, Math.max(10, expiresIn - 60) * 1000);
  }

  async function connect() {
    let token;
    try {
      token = await freshToken();
    } catch (error) {
      setLive("down", "offline");
      reconnectLater();
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/modelhub/realtime`);
    socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token }));
    socket.onmessage = (message) => {
      let envelope;
      try {
        envelope = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (envelope.event === "auth:ok") {
        retries = 0;
        setLive("up", "live");
        renewBeforeExpiry();
        return;
      }
      if (envelope.event === "error") {
        const error = (envelope.data && envelope.data.error) || {};
        toast(`${error.message || "Realtime error"} (request id ${error.requestId || "–"})`, "warning");
        return;
      }
      document.dispatchEvent(new CustomEvent(`mh:${envelope.event}`, { detail: envelope.data }));
    };
    socket.onclose = () => {
      clearTimeout(renewTimer);
      setLive("down", "reconnecting…");
      reconnectLater();
    };
  }

  // --- charts ------------------------------------------------------------------------------------
  const charts = {};
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];

  function drawChart(id, labels, columns) {
    const node = document.getElementById(id);
    if (!node || typeof uPlot === "undefined") return;
    const width = Math.max(260, node.clientWidth || 300);
    const series = [{}].concat(
      labels.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 2, fill: i === 0 ? "rgba(37,99,235,0.08)" : undefined }))
    );
    if (charts[id]) {
      charts[id].setData(columns);
      return;
    }
    charts[id] = new uPlot({ width, height: 200, series, axes: [{}, { size: 60 }], legend: { live: false } }, columns, node);
  }

  function trendColumns(points, keys) {
    const xs = points.map((p) => Date.parse(p.timestamp) / 1000);
    return [xs].concat(keys.map((k) => points.map((p) => p[k])));
  }

  function drawDashboard(trends) {
    if (!trends) return;
    drawChart("chart-requests", ["requests", "errors"], trendColumns(trends, ["requests", "errors"]));
    drawChart("chart-latency", ["p50", "p95", "p99"], trendColumns(trends, ["latencyP50", "latencyP95", "latencyP99"]));
    drawChart("chart-cost", ["cost"], trendColumns(trends, ["cost"]));
  }

  function drawModel(trends) {
    if (!trends) return;
    const xs = trends.requests.map((p) => Date.parse(p.timestamp) / 1000);
    drawChart("chart-model", ["requests", "errors"], [xs, trends.requests.map((p) => p.value), trends.errors.map((p) => p.value)]);
  }

  function drawCosts(trends, budget) {
    if (!trends || !trends.length) return;
    const xs = trends.map((p) => Date.parse(`${p.date}T00:00:00Z`) / 1000);
    let running = 0;
    const cumulative = trends.map((p) => (running += p.cost));
    const columns = [xs, trends.map((p) => p.cost), cumulative];
    const labels = ["daily", "cumulative"];
    if (budget) {
      columns.push(xs.map(() => budget));
      labels.push("budget");
    }
    drawChart("chart-costs", labels, columns);
  }

  function readJson(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // --- live updates --------------------------------------------------------------------------------
  function updateDashboard(data) {
    for (const node of document.querySelectorAll("[data-summary]")) {
      const value = data.summary[node.dataset.summary];
      if (value !== undefined) node.textContent = (fmt[node.dataset.format] || fmt.plain)(value);
    }
    const top = document.querySelector("#top-models tbody");
    if (top) {
      top.replaceChildren(
        ...(data.topModels.length
          ? data.topModels.map((m) =>
              el("tr", {}, el("td", {}, el("a", { href: `/console/models/${m.modelId}` }, m.name)), el("td", { class: "num" }, m.requests), el("td", { class: "num" }, fmt.money(m.cost)), el("td", { class: "num" }, fmt.rating(m.rating)))
            )
          : [el("tr", { class: "empty-row" }, el("td", { colspan: "4" }, "No traffic yet."))])
      );
    }
    const alerts = document.getElementById("open-alerts");
    if (alerts) {
      alerts.replaceChildren(
        ...(data.alerts.length
          ? data.alerts.map((a) => el("li", { class: `sev-${a.severity}` }, el("span", { class: "badge" }, a.severity), ` ${a.message} `, el("time", { class: "meta" }, when(a.timestamp))))
          : [el("li", { class: "empty-row" }, "No open alerts.")])
      );
    }
    const activity = document.getElementById("activity");
    if (activity && data.recentActivity.length) {
      activity.replaceChildren(...data.recentActivity.map((e) => el("li", {}, el("span", { class: "badge" }, e.type), ` ${e.message} `, el("time", { class: "meta" }, when(e.timestamp)))));
    }
    const empty = document.getElementById("dashboard-empty");
    if (empty) empty.hidden = data.summary.totalRequests > 0;
    drawDashboard(data.trends);
    body.dataset.lastUpdate = String(Date.now());
  }

  let refreshTimer = null;
  // Re-read the part of the page an event changed: the server renders it (the rows and the actions
  // the new state allows). ``select`` picks it out of a full page; partial answers need none.
  function refreshSoon(target, select) {
    if (!document.querySelector(target) || typeof htmx === "undefined") return;
    clearTimeout(refreshTimer);
    const options = select ? { target, select, swap: "innerHTML" } : { target, swap: "innerHTML" };
    refreshTimer = setTimeout(() => htmx.ajax("GET", location.pathname + location.search, options), 400);
  }

  document.addEventListener("mh:dashboard:update", (e) => updateDashboard(e.detail));
  document.addEventListener("mh:experiment:update", (e) => {
    const d = e.detail;
    for (const node of document.querySelectorAll(`[data-experiment-id="${d.experimentId}"]`)) {
      const status = node.matches("[data-field], .badge") ? node : node.querySelector('[data-field="status"]');
      if (status) {
        status.textContent = d.status;
        status.className = `badge status-${d.status}`;
      }
    }
    refreshSoon("#experiment-results", "#experiment-results > *"); // the figures moved
  });
  document.addEventListener("mh:alert:new", (e) => {
    toast(`${e.detail.severity}: ${e.detail.message}`, e.detail.severity);
    refreshSoon("#alert-rows", "#alert-rows > *");
  });
  document.addEventListener("mh:deployment:status", (e) => {
    const d = e.detail;
    for (const row of document.querySelectorAll(`[data-deployment-id="${d.deploymentId}"]`)) {
      const status = row.querySelector('[data-field="status"]');
      if (status) {
        status.textContent = d.status;
        status.className = `badge status-${d.status}`;
      }
      const replicas = row.querySelector('[data-field="replicas"]');
      if (replicas && d.details && d.details.replicas !== undefined) replicas.textContent = d.details.replicas;
    }
    refreshSoon("#deployment-results"); // the actions a status allows change with it
  });

  // The API's refusals (4xx) are answers to show, not failures: htmx swaps them in like 200s (the
  // partials render the error envelope's message and request id).
  document.addEventListener("htmx:beforeSwap", (e) => {
    const status = e.detail.xhr.status;
    if (status >= 400 && status < 500) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    drawDashboard(readJson("trends-data"));
    const model = readJson("model-trends");
    if (model) drawModel(model);
    drawCosts(readJson("cost-trends"), readJson("monthly-budget"));
    connect();
  });
})();
