// Draws every <canvas data-chart="ID"> from the JSON in <script id="ID"> (Django's
// json_script), with the vendored Chart.js. Figures shown as text are rendered
// server-side from Decimals; charts only draw.
(function () {
  const palette = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6",
                   "#14b8a6", "#f97316", "#64748b", "#ec4899"];
  // The same rule as analytics.formatting.money_text: 2 decimals from $1 up, 3
  // significant digits below, scientific below a micro-dollar.
  function usd(value) {
    const v = Number(value);
    if (!v) return "$0.00";
    const sign = v < 0 ? "-" : "";
    const size = Math.abs(v);
    if (size < 1 && Number(size.toPrecision(3)) < 1) {
      const small = Number(size.toPrecision(3));
      if (small < 1e-6) return sign + "$" + small.toExponential(2);
      return sign + "$" + small.toFixed(Math.max(0, 2 - Math.floor(Math.log10(small))));
    }
    return sign + "$" + size.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
  }
  window.aispendMoney = usd;

  // Axis ticks: as many decimals as the step between ticks needs ($0.00002,
  // $0.00004, …; $0, $5, $10; $1,000), never a row of "$0".
  function tick(value, _index, ticks) {
    const v = Number(value);
    const step = ticks.length > 1 ? Math.abs(ticks[1].value - ticks[0].value) : Math.abs(v);
    if (v === 0) return "$0";
    if (step > 0 && step < 1e-6) return "$" + v.toExponential(1);
    const places = step >= 1 ? 0 : Math.min(8, Math.ceil(-Math.log10(step) - 1e-9));
    return (v < 0 ? "-$" : "$") + Math.abs(v).toLocaleString("en-US", {minimumFractionDigits: places, maximumFractionDigits: places});
  }
  window.aispendTick = tick;

  function config(spec) {
    const datasets = spec.series.map((s, i) => ({
      label: s.label,
      data: s.data,
      backgroundColor: spec.type === "pie" ? s.data.map((_, j) => palette[j % palette.length])
                                           : s.color || palette[i % palette.length],
      borderWidth: spec.type === "pie" ? 1 : 0,
      ...(spec.type === "pie" ? {} : {stack: "current"}),
    }));
    if (spec.type === "pie") {
      return {
        type: "doughnut",
        data: {labels: spec.labels, datasets},
        options: {maintainAspectRatio: false, animation: false,
                  plugins: {legend: {position: window.innerWidth < 640 ? "bottom" : "right"},
                            tooltip: {callbacks: {label: (c) => `${c.label}: ${usd(c.parsed)}`}}}},
      };
    }
    if (spec.overlay) {
      // The previous period as a dashed line over the same day numbers.
      datasets.push({type: "line", label: spec.overlay.label, data: spec.overlay.data,
                     dates: spec.overlay.labels, stack: "previous", borderColor: "#64748b",
                     backgroundColor: "#64748b", borderDash: [5, 4], borderWidth: 2,
                     pointRadius: 0, tension: 0});
    }
    const counts = spec.unit === "calls";
    const value = (v) => counts ? Number(v).toLocaleString("en-US") : usd(v);
    const label = (c) => {
      const when = c.dataset.dates ? ` (${c.dataset.dates[c.dataIndex]})` : "";
      return `${c.dataset.label}${when}: ${value(c.parsed.y)}`;
    };
    return {
      type: "bar",
      data: {labels: spec.labels, datasets},
      options: {
        maintainAspectRatio: false, animation: false,
        scales: {x: {stacked: true, grid: {display: false}},
                 y: {stacked: true, beginAtZero: true,
                     ticks: counts ? {precision: 0} : {callback: tick}}},
        plugins: {legend: {display: datasets.length > 1, position: "bottom"},
                  tooltip: {callbacks: {label}}},
      },
    };
  }

  function draw() {
    if (typeof Chart === "undefined") return;
    document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      if (canvas.dataset.drawn) return;  // live.js redraws only the canvases it swapped in
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      const chart = new Chart(canvas, config(JSON.parse(source.textContent)));
      canvas.dataset.drawn = String(chart.data.datasets.length);
    });
  }

  window.aispendDrawCharts = draw;

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
