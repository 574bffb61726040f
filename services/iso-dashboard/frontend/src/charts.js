// Charts from the JSON the server embeds next to each <canvas data-chart>:
// {"labels": [...], "datasets": [{"label": "...", "data": [...]}]}.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, Filler, Legend, LinearScale,
  LineController, LineElement, PointElement, Tooltip);

const COLOURS = ["#01689b", "#e17000", "#39870c", "#a90061", "#8fcae7", "#ffb612"];
export const charts = new Map();

function readJson(doc, id) {
  const element = doc.getElementById(id);
  if (!element) return null;
  try {
    return JSON.parse(element.textContent);
  } catch {
    return null;
  }
}

export function initCharts(doc) {
  for (const canvas of doc.querySelectorAll("canvas[data-chart]")) {
    const data = readJson(doc, canvas.dataset.source);
    if (!data) continue;
    const kind = canvas.dataset.chart === "bar" ? "bar" : "line";
    const datasets = (data.datasets || []).map((set, i) => ({
      label: String(set.label),
      data: set.data,
      backgroundColor: COLOURS[i % COLOURS.length],
      borderColor: COLOURS[i % COLOURS.length],
      tension: 0.25,
    }));
    const chart = new Chart(canvas, {
      type: kind,
      data: { labels: data.labels || [], datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: kind === "bar" ? { x: { stacked: true }, y: { stacked: true, beginAtZero: true } }
          : { y: { beginAtZero: true } },
        plugins: { legend: { position: "bottom" } },
      },
    });
    charts.set(canvas.id, chart);
    canvas.dataset.rendered = "true";
  }
}
