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
  ["btc-address", "btc-amount"].forEach(function (id) {
    var el = document.getElementById(id);
    if (!el || !navigator.clipboard) { return; }
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = "Copy";
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(el.textContent.trim()).then(function () {
        button.textContent = "Copied";
      });
    });
    el.parentNode.appendChild(document.createTextNode(" "));
    el.parentNode.appendChild(button);
  });
}());
