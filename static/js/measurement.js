/* Measurement charts: each <canvas data-measure-chart="kind" data-source="id"> is drawn
   with the vendored Chart.js from the JSON the page embeds (json_script) under that id.
   The table under each chart holds the same numbers (and its CSV). */
(function () {
  "use strict";

  // One colour per attribution model, in the order the tables list them.
  var MODEL_COLOURS = {
    first_touch: "#4f46e5",
    last_touch: "#0d9488",
    linear: "#d97706",
    time_decay: "#9333ea",
    position_based: "#db2777"
  };

  function readJson(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function attribution(canvas, data) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.datasets.map(function (set) {
          return { label: set.label, data: set.data, backgroundColor: MODEL_COLOURS[set.model], borderRadius: 3 };
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, title: { display: true, text: "Conversions credited" } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  function rates(canvas, data) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{ label: "Conversion rate (%)", data: data.data, backgroundColor: ["#4f46e5", "#9ca3af"], borderRadius: 3, maxBarThickness: 72 }]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { callback: function (value) { return value + "%"; } } } },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (item) { return item.parsed.y.toFixed(1) + "% converted"; } } }
        }
      }
    });
  }

  var RENDERERS = { attribution: attribution, rates: rates };

  function draw(root) {
    if (!window.Chart) return;
    root.querySelectorAll("canvas[data-measure-chart]").forEach(function (canvas) {
      var render = RENDERERS[canvas.dataset.measureChart];
      var data = readJson(canvas.dataset.source);
      if (canvas.dataset.drawn || !render || !data) return;
      render(canvas, data);
      canvas.dataset.drawn = "true";
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { draw(document); });
  } else {
    draw(document);
  }
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });
})();
