// A grouped bar chart in inline SVG: one group per label, one bar per series.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// series: [{name, values, className}], values are shares (0..1) aligned with labels.
export function barChart(labels, series, caption) {
  const width = Math.max(560, 60 + labels.length * (10 + 14 * series.length));
  const height = 260;
  const [left, bottom, top] = [40, 64, 28];
  const plotH = height - bottom - top;
  const group = (width - left - 8) / labels.length;
  const barW = Math.max(2, (group - 6) / series.length);
  const peak = Math.max(0.01, ...series.flatMap((s) => s.values));
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": caption,
    class: "chart",
  });
  root.append(svg("title", {}, caption));
  for (const tick of [0, 0.5, 1]) {
    const y = top + plotH * (1 - tick);
    root.append(
      svg("line", { x1: left, x2: width - 8, y1: y, y2: y, class: "grid" }),
      svg("text", { x: left - 4, y: y + 4, "text-anchor": "end" }, `${Math.round(peak * tick * 100)}%`),
    );
  }
  labels.forEach((label, i) => {
    const x0 = left + i * group + 3;
    series.forEach((s, j) => {
      const h = (plotH * (s.values[i] || 0)) / peak;
      const bar = svg("rect", {
        x: x0 + j * barW,
        y: top + plotH - h,
        width: barW - 1,
        height: h,
        class: s.className,
      });
      bar.append(svg("title", {}, `${s.name}, ${label}: ${((s.values[i] || 0) * 100).toFixed(1)}%`));
      root.append(bar);
    });
    const tx = x0 + group / 2 - 3;
    const ty = top + plotH + 12;
    root.append(
      svg("text", { x: tx, y: ty, transform: `rotate(35 ${tx} ${ty})`, class: "tick" }, label),
    );
  });
  series.forEach((s, j) => {
    const x = left + j * 120;
    root.append(
      svg("rect", { x, y: 6, width: 10, height: 10, class: s.className }),
      svg("text", { x: x + 14, y: 15 }, s.name),
    );
  });
  return root;
}
