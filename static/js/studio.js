/* The journey studio beside the canvas: the simulated path's highlight, and the selected
   node sent with the Preview button. Loaded by templates/journeys/studio/_canvas_extras.html. */
(function () {
  "use strict";

  // Preview: the toolbar button previews the node selected on the canvas, if any.
  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.detail.elt.hasAttribute("data-studio-node")) return;
    var selected = document.querySelector(".canvas-node.is-selected[data-node-id]");
    if (selected) event.detail.parameters.node = selected.getAttribute("data-node-id");
  });

  // The canvas redraws its board after every edit, empty statistics included: ask for the
  // numbers again at once rather than at the next poll (or never, for a journey that never ran).
  // The step numbers of the simulated path are put back on the new board too.
  var lastPath = [];
  document.body.addEventListener("htmx:load", function (event) {
    if (event.target.id !== "canvas-board") return;
    numberPath(lastPath);
    var poll = document.getElementById("studio-stats-poll");
    if (poll) htmx.ajax("GET", poll.getAttribute("hx-get"), { source: poll, swap: "none" });
  });

  // Simulate: the server names the path (node ids in order) in HX-Trigger. The canvas
  // highlights it (canvas.js); here each step also gets its number, and the standalone
  // outline its highlight.
  function numberPath(path) {
    document.querySelectorAll(".canvas-node[data-path-step]").forEach(function (node) {
      node.removeAttribute("data-path-step");
    });
    document.querySelectorAll(".outline-list .canvas-node.is-on-path").forEach(function (node) {
      node.classList.remove("is-on-path");
    });
    path.forEach(function (nodeId, index) {
      var node = document.getElementById("node-" + nodeId);
      if (!node || node.hasAttribute("data-path-step")) return; // a loop: keep the first visit
      node.classList.add("is-on-path");
      node.setAttribute("data-path-step", String(index + 1));
    });
  }
  // HX-Trigger events fire before the swap: the new timeline is scrolled to once it is in.
  var showTimeline = false;
  document.body.addEventListener("chorus:simulated", function (event) {
    lastPath = (event.detail && event.detail.path) || [];
    numberPath(lastPath);
    showTimeline = true;
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    var result = document.getElementById("sim-result");
    if (!showTimeline || !result) return;
    showTimeline = false;
    // Within the canvas's side panel only: the page itself stays where it is.
    var panel = result.closest(".side-panel");
    if (panel) panel.scrollTop += result.getBoundingClientRect().top - panel.getBoundingClientRect().top;
    else result.scrollIntoView({ block: "start" });
  });
  document.body.addEventListener("chorus:clear-path", function () {
    lastPath = [];
    numberPath(lastPath);
  });
})();
