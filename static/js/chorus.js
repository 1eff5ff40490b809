/* Chorus front-end glue: htmx configuration, the mobile nav toggle and error toasts.
   Loaded after static/vendor/htmx/htmx.min.js on every page. */
(function () {
  "use strict";

  // htmx 2 does not swap 4xx/5xx. Forms answer 422 with the form re-rendered and its
  // errors: swap those inline, without raising an error. Other failures stay unswapped
  // and raise htmx:responseError, which shows a toast below.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "422", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
    { code: "...", swap: false },
  ];

  // Filter forms marked data-drop-empty leave blank fields out of the URL they push,
  // so ?q=ada rather than ?q=ada&tz=&reachable=.
  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    if (detail.verb !== "get" || !detail.elt.closest("[data-drop-empty]")) return;
    Array.from(detail.formData.keys()).forEach(function (key) {
      var blank = detail.formData.getAll(key).every(function (value) { return value === ""; });
      if (blank) detail.formData.delete(key);
    });
  });

  var FAILURE_TEXT = {
    403: "You don't have permission to do that.",
    404: "That page no longer exists.",
    429: "Too many requests; try again in a moment.",
  };

  function toast(text) {
    var region = document.getElementById("toasts");
    if (!region) return;
    var item = document.createElement("div");
    item.className = "toast toast-error";
    item.setAttribute("role", "alert");
    item.textContent = text;
    region.appendChild(item);
    setTimeout(function () { item.remove(); }, 6000);
  }

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    toast(FAILURE_TEXT[status] || "Something went wrong (" + status + "). Try again.");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Chorus could not be reached. Check your connection.");
  });

  function setNav(open) {
    document.body.classList.toggle("nav-open", open);
    document.querySelectorAll("button[data-nav-toggle]").forEach(function (button) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.body.classList.contains("nav-open")) setNav(false);
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-nav-toggle]")) {
      setNav(!document.body.classList.contains("nav-open"));
      return;
    }
    var dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) dismiss.closest(".flash").remove();
  });
})();
