// The ops console works without JavaScript; this file only adds conveniences:
// live delivery progress (polls /admin/live.json while the tab is visible), the group
// checkboxes of the audience picker, and focus on the error summary.
(function () {
  "use strict";

  var BAR_ORDER = ["sent", "pending", "failed", "expired", "cancelled"];
  var INTERVAL_MS = 3000;

  function updateProgress(element, counts) {
    var total = counts.total || 0;
    var x = 0;
    BAR_ORDER.forEach(function (name) {
      var rect = element.querySelector('[data-bar="' + name + '"]');
      var width = total ? (1000 * (counts[name] || 0)) / total : 0;
      if (rect) {
        rect.setAttribute("x", x.toFixed(1));
        rect.setAttribute("width", width.toFixed(1));
      }
      x += width;
    });
    element.querySelectorAll("[data-count]").forEach(function (node) {
      var value = counts[node.dataset.count];
      if (value !== undefined && node.textContent !== String(value)) {
        node.textContent = String(value);
      }
    });
  }

  function poll() {
    var bars = document.querySelectorAll("[data-progress]");
    var url = document.body.dataset.liveUrl;
    if (!bars.length || !url || document.hidden) { return; }
    var ids = Array.prototype.map.call(bars, function (b) { return b.dataset.progress; });
    fetch(url + "?ids=" + encodeURIComponent(ids.join(",")), {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    }).then(function (response) {
      // A redirect to the login page: the session ended; reloading shows it.
      if (response.redirected || !response.ok) { window.location.reload(); return null; }
      return response.json();
    }).then(function (data) {
      if (!data) { return; }
      bars.forEach(function (bar) {
        var counts = data.progress[bar.dataset.progress];
        if (counts) { updateProgress(bar, counts); }
      });
    }).catch(function () { /* offline for a moment: try again next time */ });
  }

  if (document.querySelector("[data-progress]")) {
    window.setInterval(poll, INTERVAL_MS);
  }

  // Audience picker: a group box selects its members, and choosing a product means "only these".
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.name || box.name !== "audience_components") { return; }
    if (box.dataset.group) {
      document.querySelectorAll('[data-member-of="' + box.dataset.group + '"]').forEach(function (m) {
        m.checked = box.checked;
      });
    }
    var only = document.getElementById("scope-components");
    if (only && box.checked) { only.checked = true; }
  });

  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();
