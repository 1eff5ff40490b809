/* The journey canvas (templates/journeys/editor/canvas.html): panning and zooming, dragging
   kinds from the palette, moving nodes, connecting ports, selecting and deleting, undo and
   redo, and the simulated path's highlight.

   The server owns the graph: every change is a POST (htmx.ajax) answered with the whole
   board re-rendered, so this file keeps no graph state of its own beyond the selection and
   the view (pan and zoom, kept per journey in sessionStorage). Each editor POST carries the
   board's data-revision, which the server checks against concurrent edits. Pointer events
   serve mouse, pen and touch alike. Edge geometry mirrors journeys/editor_layout.py. */
(function () {
  "use strict";

  // --- the simulated path (the studio fires these on document.body) -------------------
  function highlightPath(path) {
    document.querySelectorAll(".canvas-node.is-on-path, .canvas-edge.is-on-path").forEach(function (el) {
      el.classList.remove("is-on-path");
    });
    (path || []).forEach(function (nodeId, index) {
      var node = document.getElementById("node-" + nodeId);
      if (node) node.classList.add("is-on-path");
      var next = path[index + 1];
      if (next === undefined) return;
      document.querySelectorAll(".canvas-edge").forEach(function (edge) {
        if (edge.dataset.from === String(nodeId) && edge.dataset.to === String(next)) edge.classList.add("is-on-path");
      });
    });
  }
  var lastPath = [];
  document.body.addEventListener("chorus:simulated", function (event) {
    lastPath = (event.detail && event.detail.path) || [];
    highlightPath(lastPath);
  });
  document.body.addEventListener("chorus:clear-path", function () {
    lastPath = [];
    highlightPath(lastPath);
  });

  var editor = document.querySelector("[data-editor]");
  if (!editor) return;
  var readOnly = editor.dataset.readOnly === "true";
  var viewport = document.getElementById("canvas-viewport");
  var world = document.getElementById("canvas-world");
  var panel = document.getElementById("side-panel");
  var panelIntro = panel.innerHTML;
  var VIEW_KEY = "chorus-canvas-view-" + editor.dataset.journey;
  var MIN_SCALE = 0.3, MAX_SCALE = 2, MIN_FIT = 0.6; // smaller than this, text is unreadable: pan instead
  var DRAG_THRESHOLD = 4;

  function board() { return document.getElementById("canvas-board"); }
  function nodeSize() {
    return { w: Number(board().dataset.nodeWidth), h: Number(board().dataset.nodeHeight) };
  }

  // --- requests ----------------------------------------------------------------------
  document.body.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (event.detail.verb === "get" || !(editor.contains(elt) || (elt.closest && elt.closest("[data-editor-action]")))) return;
    event.detail.formData.set("revision", board().dataset.revision);
  });
  // A stale revision (409) or a missing node (404) is explained in the alert region
  // the server retargets to; swap it instead of raising a generic toast.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if ((status === 409 || status === 404) && event.detail.xhr.getResponseHeader("HX-Retarget")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Save pressed while the panel is re-rendering for a changed select (that refresh still
  // in flight): the Save waits in the editor's queue, and the refresh must not replace the
  // form it will post, or the Save is dropped with the old form. Save re-renders the panel.
  var saveWaiting = false;
  document.body.addEventListener("submit", function (event) {
    if (event.target.id === "node-form") saveWaiting = true;
  }, true);
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!elt) return;
    if (elt.id === "node-form") saveWaiting = false; // its answer (saved or refused) is here
    else if (saveWaiting && panel.contains(elt)) event.detail.shouldSwap = false;
  });
  document.body.addEventListener("htmx:sendError", function (event) {
    if (event.detail.elt && event.detail.elt.id === "node-form") saveWaiting = false;
  });

  // A refused panel form: bring its first marked field into view (the Save button that
  // was pressed is usually far below it).
  document.body.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 422 && event.detail.target && event.detail.target.id === "side-panel") {
      var invalid = event.detail.target.querySelector('[aria-invalid="true"]') || event.detail.target.querySelector(".field-error, .form-error");
      if (invalid) invalid.scrollIntoView({ block: "center" });
    }
  });

  // Edits go one after another, each sent once the previous answer is on the board, so
  // each carries the revision its predecessor produced (and never a stale one of our own).
  var pending = Promise.resolve();
  function post(url, values, when) {
    clearAlert();
    pending = pending.then(function () {
      if (when && !when()) return null;  // judged on the board the previous edit left
      return htmx.ajax("POST", url, { source: editor, target: "#canvas-board", swap: "outerHTML", values: values || {} });
    }).catch(function () { /* htmx reports failures itself (toasts, the alert region) */ });
    return pending;
  }
  function nodeUrl(nodeId, suffix) {
    return editor.dataset.nodeUrl.replace("__node__", encodeURIComponent(nodeId)) + (suffix || "");
  }
  function clearAlert() {
    var alert = document.getElementById("editor-alert");
    if (alert) alert.innerHTML = "";
  }

  // --- the view: pan and zoom ----------------------------------------------------------
  var view = { x: 0, y: 0, scale: 1 }, savedView = null;
  try { savedView = JSON.parse(sessionStorage.getItem(VIEW_KEY) || "null"); } catch (e) { /* keep the default */ }
  if (savedView) view = Object.assign(view, savedView);

  function applyView() {
    world.style.transform = "translate(" + view.x + "px, " + view.y + "px) scale(" + view.scale + ")";
    var label = editor.querySelector(".zoom-level");
    if (label) label.textContent = Math.round(view.scale * 100) + "%";
    try { sessionStorage.setItem(VIEW_KEY, JSON.stringify(view)); } catch (e) { /* private mode */ }
  }
  function zoomAt(factor, clientX, clientY) {
    var rect = viewport.getBoundingClientRect();
    var px = clientX === undefined ? rect.width / 2 : clientX - rect.left;
    var py = clientY === undefined ? rect.height / 2 : clientY - rect.top;
    var scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, view.scale * factor));
    view.x = px - (px - view.x) * (scale / view.scale);
    view.y = py - (py - view.y) * (scale / view.scale);
    view.scale = scale;
    applyView();
  }
  function toWorld(clientX, clientY) {
    var rect = viewport.getBoundingClientRect();
    return { x: (clientX - rect.left - view.x) / view.scale, y: (clientY - rect.top - view.y) / view.scale };
  }
  function overViewport(clientX, clientY) {
    var rect = viewport.getBoundingClientRect();
    return clientX >= rect.left && clientX <= rect.right && clientY >= rect.top && clientY <= rect.bottom;
  }

  viewport.addEventListener("wheel", function (event) {
    event.preventDefault();
    if (event.ctrlKey || event.metaKey) {
      zoomAt(event.deltaY < 0 ? 1.1 : 1 / 1.1, event.clientX, event.clientY);
    } else {
      view.x -= event.deltaX;
      view.y -= event.deltaY;
      applyView();
    }
  }, { passive: false });

  editor.addEventListener("click", function (event) {
    var zoom = event.target.closest("[data-zoom]");
    if (!zoom) return;
    if (zoom.dataset.zoom === "in") zoomAt(1.2);
    else if (zoom.dataset.zoom === "out") zoomAt(1 / 1.2);
    else fitView();
  });

  // Zoom and pan so every node shows (never above 100%), centred across. A journey too
  // tall to fit readably stops at MIN_FIT and shows its top: the entry, then pan down.
  function fitView() {
    var nodes = Array.prototype.slice.call(document.querySelectorAll(".canvas-board .canvas-node"));
    if (!nodes.length) { view = { x: 0, y: 0, scale: 1 }; applyView(); return; }
    var size = nodeSize(), pad = 24;
    var xs = nodes.map(function (n) { return nodeXY(n).x; }), ys = nodes.map(function (n) { return nodeXY(n).y; });
    var minX = Math.min.apply(null, xs), minY = Math.min.apply(null, ys);
    var width = Math.max.apply(null, xs) + size.w - minX, height = Math.max.apply(null, ys) + size.h + 40 - minY;
    var rect = viewport.getBoundingClientRect();
    var scale = Math.max(MIN_FIT, Math.min(1, (rect.width - 2 * pad) / width, (rect.height - 2 * pad) / height));
    var spareX = rect.width - width * scale, spareY = rect.height - height * scale;
    view = {
      x: (spareX > 0 ? spareX / 2 : pad) - minX * scale,
      y: (spareY > 2 * pad ? Math.min(spareY / 2, 2 * pad) : pad) - minY * scale,
      scale: scale,
    };
    applyView();
  }
  function fitsAsDrawn() {
    var rect = viewport.getBoundingClientRect(), size = nodeSize();
    return Array.prototype.every.call(document.querySelectorAll(".canvas-board .canvas-node"), function (n) {
      var at = nodeXY(n);
      return at.x + size.w <= rect.width && at.y + size.h + 40 <= rect.height;
    });
  }
  // Tidy layout moves every node: show the whole result.
  document.body.addEventListener("htmx:afterSettle", function (event) {
    var cfg = event.detail.requestConfig;
    if (cfg && cfg.elt && cfg.elt.hasAttribute && cfg.elt.hasAttribute("data-fit-after")) fitView();
  });

  // --- edges, drawn as editor_layout.edge_path draws them -------------------------------
  function nodeXY(node) {
    return { x: parseFloat(node.style.left) || 0, y: parseFloat(node.style.top) || 0 };
  }
  function edgePath(sx, sy, ex, ey) {
    var bend = Math.max(40, Math.abs(ey - sy) / 2);
    return "M " + sx + " " + sy + " C " + sx + " " + (sy + bend) + ", " + ex + " " + (ey - bend) + ", " + ex + " " + ey;
  }
  function portPoint(node, portName) {
    var at = nodeXY(node), size = nodeSize();
    var port = node.querySelector('.node-port[data-port="' + CSS.escape(portName) + '"]');
    var left = port ? parseFloat(port.style.left) : size.w / 2;
    return { x: at.x + left, y: at.y + size.h };
  }
  function redrawEdges(nodeId) {
    document.querySelectorAll(".canvas-edge").forEach(function (edge) {
      if (nodeId && edge.dataset.from !== nodeId && edge.dataset.to !== nodeId) return;
      var source = document.getElementById("node-" + edge.dataset.from);
      var target = document.getElementById("node-" + edge.dataset.to);
      if (!source || !target) return;
      var start = portPoint(source, edge.dataset.port), end = nodeXY(target);
      var d = edgePath(start.x, start.y, end.x + nodeSize().w / 2, end.y);
      edge.querySelectorAll("path").forEach(function (path) { path.setAttribute("d", d); });
    });
  }

  // --- selection -------------------------------------------------------------------------
  var selected = null; // {type: "node"|"edge", id: element id}

  function select(element) {
    document.querySelectorAll(".is-selected").forEach(function (el) { el.classList.remove("is-selected"); });
    selected = null;
    if (!element) return;
    element.classList.add("is-selected");
    selected = { type: element.classList.contains("canvas-node") ? "node" : "edge", id: element.id };
  }
  function selectedElement() {
    return selected ? document.getElementById(selected.id) : null;
  }
  function openPanel(nodeId) {
    htmx.ajax("GET", nodeUrl(nodeId), { source: editor, target: "#side-panel", swap: "innerHTML" })
      .then(function () { revealBesidePanel(nodeId); });
  }
  // On a tablet the panel is a drawer over the canvas (canvas.css): pan the chosen node
  // out from under it, so what is being configured stays in view.
  function revealBesidePanel(nodeId) {
    if (getComputedStyle(panel).position !== "absolute") return;
    var node = document.getElementById("node-" + nodeId);
    if (!node) return;
    var nodeRect = node.getBoundingClientRect(), panelRect = panel.getBoundingClientRect();
    var viewRect = viewport.getBoundingClientRect();
    if (nodeRect.right + 16 <= panelRect.left) return;
    view.x += Math.max(panelRect.left - 16 - nodeRect.right, viewRect.left + 16 - nodeRect.left);
    applyView();
  }
  function closePanel() {
    panel.innerHTML = panelIntro;
    htmx.process(panel);
  }
  function deleteSelection() {
    var element = selectedElement();
    if (!element || readOnly) return;
    if (selected.type === "node") {
      if (element.dataset.kind === "entry") return;
      post(nodeUrl(element.dataset.nodeId, "delete/"));
      if (panel.querySelector('[data-panel-node="' + CSS.escape(element.dataset.nodeId) + '"]')) closePanel();
    } else {
      post(editor.dataset.deleteEdgeUrl, { from: element.dataset.from, port: element.dataset.port });
    }
    selected = null;
  }
  function history(which) {
    if (readOnly) return;
    // Asked of the board once the edits before it have landed, not of the toolbar button,
    // which is only updated after the swap settles: a quick Ctrl+Z then Ctrl+Shift+Z
    // must redo what it just undid.
    var flag = which === "undo" ? "canUndo" : "canRedo";
    post(editor.dataset[which + "Url"], {}, function () {
      var current = board();
      return current && current.dataset[flag] === "true";
    });
  }

  // After every board swap: toolbar state, selection and the simulated path survive.
  function boardSwapped() {
    var current = board();
    if (!current) return;
    var undo = document.getElementById("undo-button"), redo = document.getElementById("redo-button");
    var versionLabel = document.getElementById("editor-version");
    if (versionLabel) versionLabel.textContent = current.dataset.versionLabel;
    if (undo) undo.disabled = current.dataset.canUndo !== "true";
    if (redo) redo.disabled = current.dataset.canRedo !== "true";
    if (selected) {
      var element = document.getElementById(selected.id);
      if (element) element.classList.add("is-selected"); else selected = null;
    }
    highlightPath(lastPath);
  }
  document.body.addEventListener("htmx:afterSettle", boardSwapped);
  document.body.addEventListener("htmx:oobAfterSwap", boardSwapped);

  editor.addEventListener("click", function (event) {
    var edge = event.target.closest(".canvas-edge");
    if (edge) { select(edge); return; }
    if (event.target.closest("[data-close-panel]")) { closePanel(); select(null); return; }
    var historyButton = event.target.closest("[data-history]");
    if (historyButton) { history(historyButton.dataset.history); return; }
    var focus = event.target.closest("[data-focus-node]");
    if (focus) {
      var node = document.getElementById("node-" + focus.dataset.focusNode);
      if (node) { select(node); node.focus(); openPanel(focus.dataset.focusNode); }
      return;
    }
    var dismiss = event.target.closest("[data-dismiss-alert]");
    if (dismiss) clearAlert();
  });

  document.addEventListener("keydown", function (event) {
    var typing = event.target.closest("input, textarea, select, [contenteditable]");
    if (event.key === "Escape") {
      if (document.activeElement && panel.contains(document.activeElement)) document.activeElement.blur();
      closePanel();
      select(null);
      return;
    }
    if (typing) return;
    var key = event.key.toLowerCase();
    if ((event.ctrlKey || event.metaKey) && key === "z") {
      event.preventDefault();
      history(event.shiftKey ? "redo" : "undo");
    } else if ((event.ctrlKey || event.metaKey) && key === "y") {
      event.preventDefault();
      history("redo");
    } else if (event.key === "Delete" || event.key === "Backspace") {
      if (selected) { event.preventDefault(); deleteSelection(); }
    } else if (event.key === "Enter" || event.key === " ") {
      var node = event.target.closest(".canvas-node"), edge = event.target.closest(".canvas-edge");
      if (node) { event.preventDefault(); select(node); openPanel(node.dataset.nodeId); }
      else if (edge) { event.preventDefault(); select(edge); }
      var item = event.target.closest("[data-palette-kind]");
      if (item) { event.preventDefault(); addAtCentre(item.dataset.paletteKind); }
    }
  });

  // --- pointer gestures: pan, move a node, connect a port, drop from the palette ---------
  var gesture = null;

  function addAtCentre(kind) {
    var rect = viewport.getBoundingClientRect();
    var at = toWorld(rect.left + rect.width / 2, rect.top + rect.height / 2);
    post(editor.dataset.addUrl, { kind: kind, x: Math.round(at.x - nodeSize().w / 2), y: Math.round(at.y - 20) });
  }

  function startPalette(event, item) {
    var ghost = item.cloneNode(true);
    ghost.classList.add("palette-ghost");
    ghost.style.left = event.clientX + "px";
    ghost.style.top = event.clientY + "px";
    document.body.appendChild(ghost);
    return { type: "palette", kind: item.dataset.paletteKind, ghost: ghost, x0: event.clientX, y0: event.clientY, moved: false };
  }

  function startNode(event, node) {
    var at = nodeXY(node);
    return { type: "node", node: node, x0: event.clientX, y0: event.clientY, left: at.x, top: at.y, moved: false };
  }

  function startPort(event, port) {
    var node = port.closest(".canvas-node");
    return { type: "port", node: node, port: port.dataset.port, start: portPoint(node, port.dataset.port), moved: false,
             x0: event.clientX, y0: event.clientY };
  }

  document.addEventListener("pointerdown", function (event) {
    if (event.button !== 0 || gesture) return;
    var item = event.target.closest("[data-palette-kind]");
    var port = event.target.closest(".node-port");
    var node = event.target.closest(".canvas-node");
    if (item && !readOnly) gesture = startPalette(event, item);
    else if (port && !readOnly && viewport.contains(port)) gesture = startPort(event, port);
    else if (node && viewport.contains(node)) gesture = startNode(event, node);
    else if (viewport.contains(event.target) && !event.target.closest(".canvas-edge")) {
      gesture = { type: "pan", x0: event.clientX, y0: event.clientY, vx: view.x, vy: view.y, moved: false };
    }
    if (!gesture) return;
    event.preventDefault();
    gesture.pointer = event.pointerId;
  });

  document.addEventListener("pointermove", function (event) {
    if (!gesture || event.pointerId !== gesture.pointer) return;
    var dx = event.clientX - gesture.x0, dy = event.clientY - gesture.y0;
    if (!gesture.moved && Math.abs(dx) + Math.abs(dy) < DRAG_THRESHOLD) return;
    gesture.moved = true;
    if (gesture.type === "pan") {
      view.x = gesture.vx + dx;
      view.y = gesture.vy + dy;
      applyView();
    } else if (gesture.type === "palette") {
      gesture.ghost.style.left = event.clientX + "px";
      gesture.ghost.style.top = event.clientY + "px";
      viewport.classList.toggle("is-drop-target", overViewport(event.clientX, event.clientY));
    } else if (gesture.type === "node" && !readOnly) {
      gesture.node.classList.add("is-dragging");
      gesture.node.style.left = gesture.left + dx / view.scale + "px";
      gesture.node.style.top = gesture.top + dy / view.scale + "px";
      redrawEdges(gesture.node.dataset.nodeId);
    } else if (gesture.type === "port") {
      var end = toWorld(event.clientX, event.clientY);
      board().querySelector(".edge-draft").setAttribute("d", edgePath(gesture.start.x, gesture.start.y, end.x, end.y));
      document.querySelectorAll(".canvas-node.is-drop-target").forEach(function (el) { el.classList.remove("is-drop-target"); });
      var over = nodeAt(event.clientX, event.clientY);
      if (over && over !== gesture.node) over.classList.add("is-drop-target");
    }
  });

  function nodeAt(clientX, clientY) {
    var hit = document.elementFromPoint(clientX, clientY);
    var node = hit && hit.closest(".canvas-node");
    return node && viewport.contains(node) ? node : null;
  }

  function finish(event) {
    if (!gesture || event.pointerId !== gesture.pointer) return;
    var done = gesture;
    gesture = null;
    if (done.type === "palette") {
      done.ghost.remove();
      viewport.classList.remove("is-drop-target");
      if (done.moved && overViewport(event.clientX, event.clientY)) {
        var at = toWorld(event.clientX, event.clientY);
        post(editor.dataset.addUrl, { kind: done.kind, x: Math.round(at.x - nodeSize().w / 2), y: Math.round(at.y - 20) });
      } else if (!done.moved) {
        addAtCentre(done.kind);
      }
    } else if (done.type === "node") {
      done.node.classList.remove("is-dragging");
      if (done.moved && !readOnly) {
        var left = parseFloat(done.node.style.left), top = parseFloat(done.node.style.top);
        post(nodeUrl(done.node.dataset.nodeId, "move/"), { x: Math.round(left), y: Math.round(top) });
      } else if (!done.moved) {
        select(done.node);
        done.node.focus();
        openPanel(done.node.dataset.nodeId);
      }
    } else if (done.type === "port") {
      board().querySelector(".edge-draft").setAttribute("d", "");
      document.querySelectorAll(".canvas-node.is-drop-target").forEach(function (el) { el.classList.remove("is-drop-target"); });
      var target = nodeAt(event.clientX, event.clientY);
      if (done.moved && target && target !== done.node) {
        post(editor.dataset.connectUrl, { from: done.node.dataset.nodeId, port: done.port, to: target.dataset.nodeId });
      }
    } else if (done.type === "pan" && !done.moved) {
      select(null);
    }
  }
  document.addEventListener("pointerup", finish);
  document.addEventListener("pointercancel", function (event) {
    if (!gesture || event.pointerId !== gesture.pointer) return;
    if (gesture.ghost) gesture.ghost.remove();
    gesture = null;
    htmx.ajax("GET", window.location.pathname + window.location.search, { source: editor, target: "#canvas-board", swap: "outerHTML" });
  });

  // First open in this tab: the whole journey, zoomed out only when it does not fit as drawn.
  if (savedView || fitsAsDrawn()) applyView(); else fitView();
  boardSwapped();
})();
