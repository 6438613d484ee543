// Settings → Budgets form: the scope-value input suggests the organization's own
// customers / features / keys / environments for the scope picked (a datalist each).
(function () {
  "use strict";
  var form = document.getElementById("budget-form");
  if (!form) return;
  var scope = form.querySelector("[name=scope]");
  var value = form.querySelector("[name=scope_value]");
  if (!scope || !value) return;
  function sync() {
    value.setAttribute("list", "scope-values-" + scope.value);
    value.disabled = scope.value === "organization";
    if (value.disabled) value.value = "";
  }
  scope.addEventListener("change", sync);
  sync();
})();
