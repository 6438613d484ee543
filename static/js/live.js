// Live pages (overview, first page of requests): every 5 s while the tab is
// visible, ask /dashboard/live.json whether a call was recorded (one top-1
// index read). Only when one was does the #live block change: the poll's
// answer carries it (`fragment`) when the organization's tabs share a fresh
// render of this URL, else this same URL's #live block is fetched again
// (X-AiSpendTrack-Live: a render shared by the organization's tabs for a few
// seconds, analytics/views/live_fragment.py). Swapped in place, charts
// redrawn. Hidden tabs ask nothing.
(function () {
  const INTERVAL = 5000;
  const root = document.getElementById("live");
  if (!root || !root.dataset.liveUrl) return;
  const page = window.location.pathname + window.location.search;
  let latest = root.dataset.liveLatest || "";
  let busy = false;

  function swap(html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const fresh = doc.getElementById("live");
    if (!fresh) return;
    if (typeof Chart !== "undefined") {
      root.querySelectorAll("canvas[data-chart]").forEach((c) => { const chart = Chart.getChart(c); if (chart) chart.destroy(); });
    }
    root.replaceChildren(...Array.from(fresh.childNodes).map((node) => document.importNode(node, true)));
    root.dataset.liveLatest = fresh.dataset.liveLatest || "";
    // A shared render may predate the marker this tab just saw: remember the
    // render's, so the next poll fetches again until the block has caught up.
    latest = root.dataset.liveLatest;
    if (window.aispendDrawCharts) window.aispendDrawCharts();
    root.dispatchEvent(new CustomEvent("live:updated"));
  }

  async function refresh() {
    const response = await fetch(window.location.href, {headers: {"X-AiSpendTrack-Live": "fragment"}, credentials: "same-origin"});
    if (response.ok) swap(await response.text());
  }

  async function tick() {
    if (document.hidden || busy) return;
    busy = true;
    try {
      const query = new URLSearchParams({page: page, since: latest});
      const response = await fetch(root.dataset.liveUrl + "?" + query, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      if (response.ok) {
        const data = await response.json();
        if (data.latest !== latest) {
          latest = data.latest;
          if (typeof data.fragment === "string") swap(data.fragment);
          else await refresh();
        }
      }
    } catch (error) {
      // offline or restarting: try again next interval
    } finally {
      busy = false;
    }
  }

  setInterval(tick, INTERVAL);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
})();
