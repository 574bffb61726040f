export function initCharts(){}
