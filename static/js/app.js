// Small progressive enhancements; every page works without them.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = source.textContent.trim();
  const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
});

function fallbackCopy(text, done) {
  const area = document.createElement("textarea");
  area.value = text;
  document.body.appendChild(area);
  area.select();
  try { document.execCommand("copy"); done(); } finally { area.remove(); }
}

// <select data-autosubmit> submits its form on change (no inline handlers: the
// Content-Security-Policy allows scripts from our own files only).
document.addEventListener("change", (event) => {
  const field = event.target.closest("[data-autosubmit]");
  if (field && field.form) field.form.submit();
});

// The "waiting for your first call" page (#waiting[data-poll-url]) reloads
// itself once the organization's first call arrives.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("waiting");
  if (!box || !box.dataset.pollUrl) return;
  const poll = () => fetch(box.dataset.pollUrl, {headers: {Accept: "application/json"}, credentials: "same-origin"})
    .then((r) => r.ok ? r.json() : null)
    .then((data) => { if (data && data.has_calls) { window.location.reload(); } else { setTimeout(poll, 3000); } })
    .catch(() => setTimeout(poll, 5000));
  setTimeout(poll, 3000);
});

// Phones: the sidebar folds behind the menu button.
document.addEventListener("click", (event) => {
  const toggle = event.target.closest("#menu-toggle");
  if (!toggle) return;
  const sidebar = document.getElementById(toggle.getAttribute("aria-controls"));
  const open = sidebar.classList.toggle("open");
  toggle.setAttribute("aria-expanded", String(open));
});

// After a key is created: wait for its first call (#first-call-wait), then link to it.
// Polls every 3 s while the tab is visible; stops once the call is there.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("first-call-wait");
  if (!box) return;
  let timer = null;
  const schedule = (ms) => { clearTimeout(timer); timer = setTimeout(poll, ms); };
  function show(call) {
    box.classList.add("arrived");
    box.textContent = "";
    const strong = document.createElement("strong");
    strong.textContent = "Your first call arrived: ";
    const link = document.createElement("a");
    link.href = call.url;
    link.id = "first-call-link";
    link.textContent = `${call.model || "call"} · ${call.status} · ${call.cost}`;
    box.append(strong, link);
  }
  function poll() {
    if (document.hidden) return;  // resumed by visibilitychange
    fetch(box.dataset.firstCallUrl, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then((r) => r.ok ? r.json() : null)
      .then((data) => { if (data && data.has_calls) { show(data); timer = "done"; } else { schedule(3000); } })
      .catch(() => schedule(5000));
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden && timer !== "done") schedule(0); });
  schedule(1500);
});
