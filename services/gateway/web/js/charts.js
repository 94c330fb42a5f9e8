// Charts drawn with plain DOM and SVG: the seven-expression bar chart (updated
// in place for live mode), the per-day trend and the distribution.

import { h, svg, percent } from "./dom.js";
import { EXPRESSIONS, dominantOf } from "./expressions.js";

/**
 * Horizontal bars of the seven expression scores. Returns {el, update(scores)};
 * update() changes widths and numbers in place, so live frames don't rebuild the DOM.
 */
export function scoreBars({ caption = "Apparent expression scores", headline: withHeadline = true } = {}) {
  const rows = new Map();
  const list = h("ul", { class: "score-bars", "aria-label": caption });
  for (const e of EXPRESSIONS) {
    const fill = h("span", { class: "bar-fill" });
    fill.style.backgroundColor = e.color;
    const value = h("span", { class: "bar-value" }, "0%");
    const row = h(
      "li",
      { class: "bar-row", dataset: { expression: e.key } },
      h("span", { class: "bar-label" }, h("span", { class: "emoji", "aria-hidden": "true" }, e.emoji), ` ${e.label}`),
      h("span", { class: "bar-track", "aria-hidden": "true" }, fill),
      value,
    );
    rows.set(e.key, { row, fill, value });
    list.append(row);
  }
  const headline = h("p", { class: "dominant", hidden: !withHeadline });
  const el = h("div", { class: "score-chart" }, headline, list);
  function update(scores) {
    const top = dominantOf(scores);
    for (const e of EXPRESSIONS) {
      const { row, fill, value } = rows.get(e.key);
      const score = Math.max(0, Math.min(1, Number(scores?.[e.key]) || 0));
      fill.style.width = `${(score * 100).toFixed(1)}%`;
      value.textContent = percent(score);
      row.classList.toggle("is-dominant", e === top);
    }
    headline.replaceChildren(
      h("span", { class: "dominant-emoji", "aria-hidden": "true" }, top.emoji),
      h("span", {}, "Apparent expression: ", h("strong", {}, top.label), ` (${percent(scores?.[top.key])})`),
    );
  }
  return { el, update };
}

/**
 * Stacked bars of analyses per day (one colour per dominant expression), with
 * a data table for screen readers and anyone who prefers numbers.
 */
export function trendChart(buckets, { title = "Expressions per day", from = "", to = "" } = {}) {
  if (!buckets.length) return h("p", { class: "empty" }, "No analyses in this range.");
  const trend = fillDays(buckets, from, to);
  // A narrower drawing on phones keeps the axis text legible once scaled to the screen.
  const width = window.matchMedia("(max-width: 600px)").matches ? 360 : 640;
  const height = 240;
  const pad = { left: 34, right: 8, top: 10, bottom: 46 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const maxTotal = Math.max(1, ...trend.map((b) => Number(b.analyses) || 0));
  const ticks = niceTicks(maxTotal);
  const top = ticks[ticks.length - 1];
  const slot = innerW / trend.length;
  const barW = Math.max(2, Math.min(36, slot * 0.7));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "trend-chart",
    role: "img",
    "aria-label": `${title}: ${buckets.length} day(s) with analyses`,
  });
  for (const tick of ticks) {
    const y = pad.top + innerH - (tick / top) * innerH;
    chart.append(
      svg("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "grid" }),
      svg("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end", class: "axis" }, String(tick)),
    );
  }
  const labelEvery = Math.ceil(trend.length / (width < 480 ? 5 : 8));
  trend.forEach((bucket, i) => {
    const x = pad.left + slot * i + (slot - barW) / 2;
    let y = pad.top + innerH;
    for (const e of EXPRESSIONS) {
      const count = Number(bucket.counts?.[e.key]) || 0;
      if (!count) continue;
      const barH = (count / top) * innerH;
      y -= barH;
      chart.append(
        svg(
          "rect",
          { x, y, width: barW, height: barH, fill: e.color },
          svg("title", {}, `${bucket.start_date}: ${count} ${e.label.toLowerCase()}`),
        ),
      );
    }
    if (i % labelEvery === 0) {
      chart.append(
        svg(
          "text",
          { x: x + barW / 2, y: height - pad.bottom + 16, "text-anchor": "middle", class: "axis" },
          shortDate(bucket.start_date),
        ),
      );
    }
  });
  return h(
    "figure",
    { class: "chart" },
    chart,
    legend(),
    h(
      "details",
      { class: "chart-data" },
      h("summary", {}, "Show as table"),
      dataTable(
        ["Day", "Analyses", ...EXPRESSIONS.map((e) => e.label)],
        buckets.map((b) => [
          b.start_date,
          b.analyses,
          ...EXPRESSIONS.map((e) => b.counts?.[e.key] || 0),
        ]),
      ),
    ),
    h("figcaption", { class: "visually-hidden" }, title),
  );
}

/** The distribution over a range: mean scores as bars plus counts of dominant expressions. */
export function distributionChart(summary) {
  const total = Number(summary.total_analyses) || 0;
  if (!total) return h("p", { class: "empty" }, "No analyses in this range.");
  const list = h("ul", { class: "score-bars", "aria-label": "Distribution of apparent expressions" });
  for (const e of EXPRESSIONS) {
    const score = Number(summary.mean_scores?.[e.key]) || 0;
    const count = Number(summary.counts?.[e.key]) || 0;
    const fill = h("span", { class: "bar-fill" });
    fill.style.backgroundColor = e.color;
    fill.style.width = `${(score * 100).toFixed(1)}%`;
    list.append(
      h(
        "li",
        { class: "bar-row", dataset: { expression: e.key } },
        h("span", { class: "bar-label" }, h("span", { class: "emoji", "aria-hidden": "true" }, e.emoji), ` ${e.label}`),
        h("span", { class: "bar-track", "aria-hidden": "true" }, fill),
        h("span", { class: "bar-value" }, percent(score), h("span", { class: "bar-count" }, ` · ${count}×`)),
      ),
    );
  }
  return h(
    "div",
    { class: "score-chart" },
    h(
      "p",
      { class: "hint" },
      `Mean apparent-expression scores over ${total} analys${total === 1 ? "is" : "es"}` +
        ` (${summary.total_faces || 0} face(s)); × = times it was the dominant one.`,
    ),
    list,
  );
}

function legend() {
  return h(
    "ul",
    { class: "legend", "aria-label": "Legend" },
    EXPRESSIONS.map((e) => {
      const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.backgroundColor = e.color;
      return h("li", {}, swatch, h("span", { class: "emoji", "aria-hidden": "true" }, e.emoji), ` ${e.label}`);
    }),
  );
}

export function dataTable(headers, rows) {
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", {}, String(cell)))))),
    ),
  );
}

/**
 * The buckets with an empty one for each day of [from, to] that had no analyses, so the x axis is
 * time (the API returns only days with analyses). Long ranges keep just the buckets.
 */
function fillDays(buckets, from, to) {
  if (!from || !to) return buckets;
  const [y1, m1, d1] = from.split("-").map(Number);
  const [y2, m2, d2] = to.split("-").map(Number);
  const days = Math.round((Date.UTC(y2, m2 - 1, d2) - Date.UTC(y1, m1 - 1, d1)) / 86400000) + 1;
  if (days < 1 || days > 92) return buckets;
  const byDay = new Map(buckets.map((b) => [b.start_date, b]));
  const filled = [];
  for (let i = 0; i < days; i += 1) {
    const day = new Date(Date.UTC(y1, m1 - 1, d1 + i)).toISOString().slice(0, 10);
    filled.push(byDay.get(day) || { start_date: day, analyses: 0, counts: {} });
  }
  // Buckets outside the range (should not happen) are kept rather than silently dropped.
  for (const b of buckets) if (b.start_date < from || b.start_date > to) filled.push(b);
  return filled.sort((a, b) => a.start_date.localeCompare(b.start_date));
}

function niceTicks(max) {
  const step = max <= 5 ? 1 : max <= 10 ? 2 : Math.ceil(max / 5 / 5) * 5;
  const ticks = [];
  for (let t = 0; t < max + step; t += step) ticks.push(t);
  return ticks;
}

function shortDate(isoDay) {
  const [y, m, d] = isoDay.split("-").map(Number);
  return new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" }).format(new Date(y, m - 1, d));
}
