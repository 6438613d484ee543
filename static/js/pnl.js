// The customer page's monthly P&L: revenue and AI cost bars, margin line
// (canvas[data-pnl-chart] names a json_script element; see analytics/views/margin.py).
(function () {
  function draw() {
    if (typeof Chart === "undefined") return;
    document.querySelectorAll("canvas[data-pnl-chart]").forEach((canvas) => {
      const source = document.getElementById(canvas.dataset.pnlChart);
      if (!source) return;
      const spec = JSON.parse(source.textContent);
      const [revenue, cost, margin] = spec.series;
      const money = (v) => (v === null ? "unknown" :
        (v < 0 ? "-$" : "$") + Math.abs(v).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2}));
      const chart = new Chart(canvas, {
        type: "bar",
        data: {
          labels: spec.labels,
          datasets: [
            {label: revenue.label, data: revenue.data, backgroundColor: "#16a34a", order: 2},
            {label: cost.label, data: cost.data, backgroundColor: "#6366f1", order: 2},
            {type: "line", label: margin.label, data: margin.data, borderColor: "#f59e0b",
             backgroundColor: "#f59e0b", borderWidth: 2, spanGaps: false, order: 1},
          ],
        },
        options: {
          maintainAspectRatio: false, animation: false,
          scales: {x: {grid: {display: false}},
                   y: {ticks: {callback: window.aispendTick || ((v) => "$" + v)}}},
          plugins: {legend: {position: "bottom"},
                    tooltip: {callbacks: {label: (c) => `${c.dataset.label}: ${money(c.parsed.y)}`}}},
        },
      });
      canvas.dataset.drawn = String(chart.data.datasets.length);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
