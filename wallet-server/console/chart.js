// A small line chart in SVG: a few series of counts over the last samples, drawn with
// presentation attributes and classes only (the page's policy allows no inline style).

import {s} from './dom.js';

const WIDTH = 600;
const HEIGHT = 180;
const PAD = {left: 44, right: 12, top: 12, bottom: 24};

/**
 * series: [{label, className, values: [number…]}], all the same length (oldest first);
 * summary: the chart's text for screen readers. Returns an <svg role="img">.
 */
export function lineChart(series, summary) {
  const length = Math.max(1, ...series.map((one) => one.values.length));
  const top = Math.max(1, ...series.flatMap((one) => one.values));
  const x = (index) => PAD.left + (length === 1 ? 0 : (index * (WIDTH - PAD.left - PAD.right)) / (length - 1));
  const y = (value) => HEIGHT - PAD.bottom - (value * (HEIGHT - PAD.top - PAD.bottom)) / top;
  const lines = series.map((one) => s('polyline', {
    class: `series ${one.className}`,
    points: one.values.map((value, index) => `${x(index).toFixed(1)},${y(value).toFixed(1)}`).join(' '),
  }));
  // The latest value of each series as a dot, so a single sample is visible too.
  const points = series.filter((one) => one.values.length).map((one) => s('circle', {
    class: `point-${one.className}`, r: 4,
    cx: x(one.values.length - 1).toFixed(1), cy: y(one.values[one.values.length - 1]).toFixed(1),
  }));
  return s('svg', {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': summary, class: 'chart', focusable: 'false'},
    s('line', {class: 'axis', x1: PAD.left, y1: HEIGHT - PAD.bottom, x2: WIDTH - PAD.right, y2: HEIGHT - PAD.bottom}),
    s('line', {class: 'axis', x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: HEIGHT - PAD.bottom}),
    s('text', {class: 'tick', x: PAD.left - 6, y: PAD.top + 4, 'text-anchor': 'end'}, String(top)),
    s('text', {class: 'tick', x: PAD.left - 6, y: HEIGHT - PAD.bottom, 'text-anchor': 'end'}, '0'),
    lines,
    points);
}
