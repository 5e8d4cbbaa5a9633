// Optional improvements to the Bitcoin payment page; it works fully without this file.
(function () {
  "use strict";
  var deadline = document.getElementById("btc-deadline");
  if (deadline) {
    var end = Date.parse(deadline.getAttribute("datetime"));
    var tick = function () {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      deadline.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      if (left > 0) { setTimeout(tick, 1000); }
    };
    tick();
  }
  // The page gives the button's words in its own language.
  var labels = document.getElementById("copy-labels");
  var copyLabel = labels ? labels.getAttribute("data-copy") : "Copy";
  var copiedLabel = labels ? labels.getAttribute("data-copied") : "Copied";
  ["btc-address", "btc-amount"].forEach(function (id) {
    var el = document.getElementById(id);
    if (!el || !navigator.clipboard) { return; }
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = copyLabel;
    button.addEventListener("click", function () {
      // data-copy: the amount as wallets read it ("0.00015980"), whatever the page's locale.
      var text = el.getAttribute("data-copy") || el.textContent;
      navigator.clipboard.writeText(text.trim()).then(function () {
        button.textContent = copiedLabel;
      });
    });
    el.parentNode.appendChild(document.createTextNode(" "));
    el.parentNode.appendChild(button);
  });
}());
