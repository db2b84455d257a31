// Storekeeper storefront: small progressive enhancements. Every page works
// without this file; it only saves a click or a reload.
(function () {
  "use strict";

  // Sort menus submit themselves when changed; their button is then redundant.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    var form = select.form;
    var button = form && form.querySelector("[data-autosubmit-button]");
    if (button) { button.hidden = true; }
    select.addEventListener("change", function () { if (form) { form.submit(); } });
  });

  // Forms that must not be sent twice (checkout) disable their button once sent.
  document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (!button) { return; }
      window.setTimeout(function () {
        button.disabled = true;
        if (button.dataset.busyLabel) { button.textContent = button.dataset.busyLabel; }
      }, 0);
    });
  });

  // An order that is still settling: poll its status, reload when it is final.
  var progress = document.querySelector("[data-status-url]");
  if (progress) {
    var url = progress.getAttribute("data-status-url");
    var badge = document.querySelector("[data-order-status]");
    var started = Date.now();
    var poll = function () {
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); return null; }
          return response.ok ? response.json() : null;
        })
        .then(function (status) {
          if (status && badge) { badge.textContent = status.label; }
          if (status && status.terminal) { window.location.reload(); return; }
          if (Date.now() - started < 120000) { window.setTimeout(poll, 1000); }
        })
        .catch(function () {
          if (Date.now() - started < 120000) { window.setTimeout(poll, 3000); }
        });
    };
    window.setTimeout(poll, 800);
  }
})();
