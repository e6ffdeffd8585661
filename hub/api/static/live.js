// Keeps [data-live-url] regions fresh: re-fetches the server-rendered fragment every
// data-live-every seconds while the tab is visible. No framework; the page works without it.
(function () {
  "use strict";
  function keepFresh(region) {
    var url = region.getAttribute("data-live-url");
    var every = Math.max(parseInt(region.getAttribute("data-live-every"), 10) || 15, 5) * 1000;
    var busy = false;
    function refresh() {
      if (busy || document.hidden) { return; }
      // never replace what someone is typing into or has focused
      if (region.contains(document.activeElement) && document.activeElement !== document.body) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html !== null) {
            region.innerHTML = html;
            region.setAttribute("data-live-updated", String(Date.now()));
          }
        })
        .catch(function () { /* offline for a moment: try again next time */ })
        .then(function () { busy = false; });
    }
    window.setInterval(refresh, every);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
  }
  document.querySelectorAll("[data-live-url]").forEach(keepFresh);
}());
