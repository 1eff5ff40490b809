/* The cadence dashboard: draws each figure's chart (Chart.js, vendored) from the JSON the
   server put on its canvas, redraws panels htmx swaps in, and keeps the page current:
   over the WebSocket when the server pushes changes (throttled re-fetch), otherwise the
   panels poll themselves (hx-trigger="every 30s"). */
(function () {
  "use strict";

  var root = document.querySelector("[data-cadence]");
  var css = getComputedStyle(document.documentElement);
  function cssVar(name, fallback) { return (css.getPropertyValue(name) || "").trim() || fallback; }
  var KEYED = {
    all: "#334155",
    email: cssVar("--email", "#2563eb"), sms: cssVar("--sms", "#0d9488"),
    push: cssVar("--push", "#d97706"), in_app: cssVar("--in-app", "#9333ea"), best: "#64748b",
    deferred: "#e0b343", suppressed: "#e5675c",
    "opted out": "#f0955a", unsubscribed: "#e0b343", "replied stop": "#0d9488",
    complained: "#b42318", bounced: "#94a3b8"
  };
  var PALETTE = ["#4f46e5", "#0ea5e9", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6"];

  function colour(series, index) {
    return KEYED[series.key] || PALETTE[index % PALETTE.length];
  }

  function draw(canvas) {
    if (canvas.dataset.drawn || typeof Chart === "undefined") return;
    var spec = JSON.parse(canvas.dataset.chart);
    var valueAxis = spec.horizontal ? "x" : "y";
    var scales = { x: { stacked: spec.stacked, grid: { display: false } }, y: { stacked: spec.stacked, grid: { display: false } } };
    scales[valueAxis] = {
      stacked: spec.stacked, beginAtZero: true, grid: { color: "#eef0f3" },
      title: { display: !!spec.yTitle, text: spec.yTitle }, ticks: { precision: 0 }
    };
    new Chart(canvas, {
      type: spec.kind,
      data: {
        labels: spec.labels,
        datasets: spec.series.map(function (s, i) {
          return { label: s.label, data: s.values, backgroundColor: colour(s, i), borderColor: colour(s, i), borderWidth: 0, maxBarThickness: 38 };
        })
      },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: spec.series.length > 1, position: "bottom", labels: { boxWidth: 12 } } },
        scales: scales,
        // A bar whose table row links somewhere (a customer, a pair of journeys) goes there.
        onClick: function (_event, elements) {
          var url = elements.length && spec.links[elements[0].index];
          if (url) window.location.assign(url);
        },
        onHover: function (event, elements) {
          event.native.target.style.cursor = elements.length && spec.links[elements[0].index] ? "pointer" : "default";
        }
      }
    });
    canvas.dataset.drawn = "1";
  }

  function drawAll(scope) {
    (scope || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  function destroyIn(elt) {
    elt.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var chart = Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  }

  document.body.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && typeof Chart !== "undefined") destroyIn(event.detail.target);
  });
  document.body.addEventListener("htmx:load", function (event) { drawAll(event.detail.elt); });

  // Period: "Chosen dates…" shows (and sends) the dates; a preset hides them.
  var form = document.querySelector("[data-cadence-filters]");
  if (form) {
    var period = form.querySelector("[data-period]");
    period.addEventListener("change", function () {
      var custom = !period.value;
      form.querySelectorAll("[data-custom-dates]").forEach(function (field) {
        field.hidden = !custom;
        field.querySelectorAll("input").forEach(function (input) { input.disabled = !custom; });
      });
      if (!custom) form.requestSubmit();
    });
  }

  drawAll(document);
  if (!root || root.dataset.websocket !== "on") return;

  // Live: a "dirty" message means the rollups changed; re-fetch at most every N seconds,
  // and once more after the last change of a burst.
  var every = 1000 * Number(root.dataset.refreshSeconds || 5);
  var last = 0, pending = null, retry = 1000;
  function refresh() {
    pending = null; last = Date.now();
    htmx.trigger(document.body, "dashboard-refresh");
  }
  function dirty() {
    if (pending) return;
    var wait = Math.max(0, last + every - Date.now());
    pending = setTimeout(refresh, wait);
  }
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + root.dataset.wsPath);
    socket.onopen = function () { retry = 1000; };
    socket.onmessage = function (event) {
      var data = JSON.parse(event.data);
      if (data.type === "dirty") dirty();
    };
    socket.onclose = function (event) {
      if (event.code === 4401 || event.code === 4403) return; // signed out or no longer allowed
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();
})();
