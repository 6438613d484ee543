// Draws every <canvas data-chart="ID"> from the JSON in <script id="ID"> (Django's
// json_script), with the vendored Chart.js. Figures shown as text are rendered
// server-side from Decimals; charts only draw.
(function () {
  const palette = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6",
                   "#14b8a6", "#f97316", "#64748b", "#ec4899"];
  const usd = (v) => "$" + Number(v).toLocaleString(undefined, {maximumFractionDigits: v < 1 ? 4 : 2});

  function config(spec) {
    const datasets = spec.series.map((s, i) => ({
      label: s.label,
      data: s.data,
      backgroundColor: spec.type === "pie" ? s.data.map((_, j) => palette[j % palette.length])
                                           : palette[i % palette.length],
      borderWidth: spec.type === "pie" ? 1 : 0,
    }));
    if (spec.type === "pie") {
      return {
        type: "doughnut",
        data: {labels: spec.labels, datasets},
        options: {maintainAspectRatio: false, animation: false,
                  plugins: {legend: {position: "right"},
                            tooltip: {callbacks: {label: (c) => `${c.label}: ${usd(c.parsed)}`}}}},
      };
    }
    return {
      type: "bar",
      data: {labels: spec.labels, datasets},
      options: {
        maintainAspectRatio: false, animation: false,
        scales: {x: {stacked: true, grid: {display: false}},
                 y: {stacked: true, ticks: {callback: (v) => usd(v)}}},
        plugins: {legend: {display: datasets.length > 1, position: "bottom"},
                  tooltip: {callbacks: {label: (c) => `${c.dataset.label}: ${usd(c.parsed.y)}`}}},
      },
    };
  }

  function draw() {
    if (typeof Chart === "undefined") return;
    document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      const chart = new Chart(canvas, config(JSON.parse(source.textContent)));
      canvas.dataset.drawn = String(chart.data.datasets.length);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
