import { initCharts } from "./charts.js";
import { initLive } from "./live.js";

document.body.dataset.bundle = "loaded";
initCharts(document);
initLive(document);
