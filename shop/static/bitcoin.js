// Optional improvements to the Bitcoin payment page; it works fully without this file.
// With it the page asks the status endpoint every few seconds and changes only what changed,
// instead of reloading (the <noscript> meta refresh is ignored while scripting is on).
(function () {
  "use strict";
  var body = document.getElementById("btc-body");
  if (!body) { return; }
  var text = function (name) { return body.getAttribute("data-text-" + name) || ""; };
  var ticker = null;

  function deadline() {
    var el = document.getElementById("btc-deadline");
    if (ticker) { clearTimeout(ticker); ticker = null; }
    if (!el) { return; }
    var end = Date.parse(el.getAttribute("datetime"));
    var tick = function () {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      el.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      if (left > 0) { ticker = setTimeout(tick, 1000); }
    };
    tick();
  }

  // The labels come from the page (data-text-*), in its language.
  function copyButtons() {
    [["btc-address", "copy-address"], ["btc-amount", "copy-amount"]].forEach(function (pair) {
      var el = document.getElementById(pair[0]);
      var holder = el && (el.closest("p") || el.parentNode);
      if (!el || !navigator.clipboard || holder.querySelector("button.copy")) { return; }
      var label = text(pair[1]);
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = label;
      button.addEventListener("click", function () {
        // data-copy: the amount as wallets read it ("0.00015980"), whatever the page's locale.
        var value = el.getAttribute("data-copy") || el.textContent;
        navigator.clipboard.writeText(value.trim()).then(function () {
          button.textContent = text("copied");
          setTimeout(function () { button.textContent = label; }, 2000);
        });
      });
      holder.appendChild(document.createTextNode(" "));
      holder.appendChild(button);
    });
  }

  function setup() {
    var how = body.querySelector(".updates-how");
    if (how && body.getAttribute("data-interval")) { how.textContent = text("updating"); }
    deadline();
    copyButtons();
  }

  // The status changed: take the new page's body (same origin) and put it in place of ours.
  function replaceBody() {
    return fetch(window.location.href, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var freshBody = fresh.getElementById("btc-body");
        var freshStatus = fresh.getElementById("btc-status");
        if (!freshBody) { return; }
        body.innerHTML = freshBody.innerHTML;
        Array.prototype.slice.call(freshBody.attributes).forEach(function (a) {
          body.setAttribute(a.name, a.value);
        });
        if (!freshBody.hasAttribute("data-status-url")) { body.removeAttribute("data-status-url"); }
        var status = document.getElementById("btc-status");
        if (status && freshStatus) { status.className = freshStatus.className; }
        setup();
      });
  }

  function poll() {
    var url = body.getAttribute("data-status-url");
    var seconds = parseInt(body.getAttribute("data-interval"), 10);
    if (!url || !seconds || !window.fetch) { return; }
    setTimeout(function () {
      fetch(url, {credentials: "same-origin", cache: "no-store"})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) { return null; }
          var state = document.getElementById("btc-state");
          // Only a changed text is written, so a screen reader announces changes only.
          if (state && state.textContent !== data.state_label) { state.textContent = data.state_label; }
          var key = data.status + " " + data.exception + " " + data.remaining_sats;
          if (key !== body.getAttribute("data-key") || data.final) { return replaceBody(); }
          return null;
        })
        .catch(function () { return null; })
        .then(poll);
    }, seconds * 1000);
  }

  setup();
  poll();
}());
