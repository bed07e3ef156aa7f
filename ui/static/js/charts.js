// Charts of reports with Chart.js 4 (ui/static/vendor, fetched by `make`) and its matrix
// plugin for the heat map. Built from the report's JSON only, like the table under it.
//
// Colours: the Okabe–Ito palette (distinguishable with every common colour-vision
// deficiency), and each bar series also gets its own fill pattern and each line its own dash
// and point shape, so no series is told apart by colour alone.

export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9',
  '#F0E442', '#000000'];
const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3], [1, 2], [12, 6]];
const POINTS = ['circle', 'rect', 'triangle', 'rectRot', 'star', 'crossRot'];

let loading = null;

function script(src) {
  return new Promise((resolve, reject) => {
    const el = document.createElement('script');
    el.src = src;
    el.onload = resolve;
    el.onerror = () => reject(new Error(`cannot load ${src}: run make to fetch the chart library`));
    document.head.append(el);
  });
}

// Loaded on the first report page only; the console's other pages never pay for it.
export function loadChartJs() {
  if (!loading) {
    loading = script('/static/vendor/chart.umd.js')
      .then(() => script('/static/vendor/chartjs-chart-matrix.min.js'))
      .then(() => window.Chart);
  }
  return loading;
}

function pattern(color, index) {
  if (index % 6 === 0) return color;
  const size = 8;
  const tile = document.createElement('canvas');
  tile.width = size;
  tile.height = size;
  const c = tile.getContext('2d');
  c.fillStyle = color;
  c.globalAlpha = 0.35;
  c.fillRect(0, 0, size, size);
  c.globalAlpha = 1;
  c.strokeStyle = color;
  c.fillStyle = color;
  c.lineWidth = 2;
  c.beginPath();
  switch (index % 6) {
    case 1: c.moveTo(0, size); c.lineTo(size, 0); break; // diagonal stripes
    case 2: c.arc(size / 2, size / 2, 2, 0, 2 * Math.PI); c.fill(); break; // dots
    case 3: c.moveTo(0, size / 2); c.lineTo(size, size / 2); break; // horizontal lines
    case 4: c.moveTo(size / 2, 0); c.lineTo(size / 2, size); break; // vertical lines
    default: c.moveTo(0, 0); c.lineTo(size, size); c.moveTo(0, size); c.lineTo(size, 0); // cross
  }
  c.stroke();
  return c.createPattern(tile, 'repeat');
}

// A white background in the PNG (a transparent one is black in some viewers).
const whiteBackground = {
  id: 'whiteBackground',
  beforeDraw(chart) {
    const { ctx } = chart;
    ctx.save();
    ctx.globalCompositeOperation = 'destination-over';
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, chart.width, chart.height);
    ctx.restore();
  },
};

// spec: {kind, x, series, y, value, stacked}; columns/rows from the report; text(col, value)
// turns a cell into what the table shows (labels translated, names as given).
export function chartConfig(report, text, seriesLabel) {
  const spec = report.chart;
  const keys = report.columns.map((c) => c.key);
  const col = (key) => keys.indexOf(key);
  if (spec.kind === 'heatmap') return heatmap(report, text, col);
  const xi = col(spec.x);
  const labels = report.rows.map((row) => text(report.columns[xi], row[xi]));
  const line = spec.kind === 'line';
  const datasets = spec.series.map((key, i) => {
    const ci = col(key);
    const color = PALETTE[i % PALETTE.length];
    return {
      label: seriesLabel(report.columns[ci]),
      key,
      data: report.rows.map((row) => row[ci]),
      backgroundColor: line ? color : pattern(color, i),
      borderColor: color,
      borderWidth: line ? 2 : 1,
      borderDash: line ? DASHES[i % DASHES.length] : [],
      pointStyle: POINTS[i % POINTS.length],
      pointRadius: line ? 4 : 0,
    };
  });
  const stacked = Boolean(spec.stacked);
  return {
    type: line ? 'line' : 'bar',
    data: { labels, datasets },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { position: 'bottom', labels: { usePointStyle: line } } },
      scales: { x: { stacked }, y: { stacked, beginAtZero: true, ticks: { precision: 0 } } },
    },
    plugins: [whiteBackground],
  };
}

function heatmap(report, text, col) {
  const spec = report.chart;
  const xi = col(spec.x);
  const yi = col(spec.y);
  const vi = col(spec.value);
  const xs = [...new Set(report.rows.map((r) => text(report.columns[xi], r[xi])))];
  const ys = [...new Set(report.rows.map((r) => text(report.columns[yi], r[yi])))];
  const data = report.rows.map((r) => ({ x: text(report.columns[xi], r[xi]),
    y: text(report.columns[yi], r[yi]), v: r[vi] }));
  const max = Math.max(1, ...data.map((d) => d.v || 0));
  // One hue, light to dark: read by lightness, which every kind of colour vision sees.
  const shade = (v) => `rgba(0, 114, 178, ${0.06 + 0.94 * ((v || 0) / max)})`;
  return {
    type: 'matrix',
    data: { datasets: [{
      label: '', key: spec.value, data,
      backgroundColor: (c) => shade(c.raw && c.raw.v),
      borderColor: 'rgba(0, 0, 0, 0.15)',
      borderWidth: 1,
      width: (c) => (c.chart.chartArea ? c.chart.chartArea.width / xs.length - 2 : 10),
      height: (c) => (c.chart.chartArea ? c.chart.chartArea.height / ys.length - 2 : 10),
    }] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { display: false },
        tooltip: { callbacks: { title: () => '', label: (c) => `${c.raw.y} ${c.raw.x}: ${c.raw.v}` } } },
      scales: {
        x: { type: 'category', labels: xs, offset: true, grid: { display: false } },
        y: { type: 'category', labels: ys, offset: true, grid: { display: false } },
      },
    },
    plugins: [whiteBackground],
  };
}
