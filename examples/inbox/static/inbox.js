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

  // An image, audio or video the browser cannot render (a format it does not know, or a
  // relay's placeholder bytes such as "<Binary contents>") is swapped for the labelled card the
  // template put next to it. "error" does not bubble: listen in the capture phase, and check
  // what failed before this script ran.
  var MEDIA = ".attachment img, .attachment audio, .attachment video";
  function unrenderable(el) {
    var figure = el.closest(".attachment");
    if (figure) { figure.classList.add("unrenderable"); }
  }
  document.addEventListener("error", function (event) {
    var el = event.target;
    if (el instanceof Element && el.matches(MEDIA)) { unrenderable(el); }
  }, true);
  document.querySelectorAll(MEDIA).forEach(function (el) {
    var failed = el.tagName === "IMG" ? el.complete && el.naturalWidth === 0 : el.error !== null;
    if (failed) { unrenderable(el); }
  });
})();
