// Poll /api/messages?since=<newest id shown> and prepend what arrived; no framework, no CDN.
// The HTML comes from the server's own (autoescaped) template, so it is safe to insert.
(function () {
  "use strict";
  var inbox = document.getElementById("inbox");
  var list = document.getElementById("messages");
  var empty = document.getElementById("empty");
  var total = document.getElementById("total");
  var live = document.getElementById("live");
  var latest = parseInt(inbox.dataset.latest, 10) || 0;
  var pollMs = parseInt(inbox.dataset.pollMs, 10) || 2000;

  function poll() {
    fetch(inbox.dataset.api + "?since=" + latest, { headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) {
        live.classList.remove("offline");
        live.textContent = "live";
        if (data.messages.length) {
          list.insertAdjacentHTML("afterbegin", data.html);
          data.messages.forEach(function (m) {
            var el = document.getElementById("msg-" + m.id);
            if (el) { el.classList.add("new"); }
          });
          latest = data.latest;
          empty.hidden = true;
        }
        total.textContent = data.total;
      })
      .catch(function () {
        live.classList.add("offline");
        live.textContent = "offline";
      })
      .then(function () { setTimeout(poll, pollMs); });
  }
  setTimeout(poll, pollMs);
})();
