// Shoppers panel: conditions from the served model's vocabularies (GET /ui/data/shoppers),
// sessions from POST /shoppers/generate (table, CSV with the returned seed) and a chart of the
// generated marginals against the training data's (aggregates from the model's transformer).

import { barChart } from "../chart.js";
import { download, el, getJSON, postForBlob, postJSON, run, seedValue } from "../api.js";

export const title = "Shoppers";
const ANY = "";
const MAX_TABLE_ROWS = 200;

function field(id, label, input) {
  input.id = id;
  return el("div", { class: "field" }, el("label", { for: id, text: label }), input);
}

function conditionSelect(column) {
  const select = el("select", { "data-column": column.name });
  select.append(el("option", { value: ANY, text: "(any)" }));
  column.categories.forEach((value, i) => {
    select.append(el("option", { value: String(i), text: String(value) }));
  });
  return select;
}

function formatCell(value) {
  if (typeof value === "number" && !Number.isInteger(value)) return value.toFixed(3);
  return String(value);
}

function sessionTable(result) {
  const shown = result.rows.slice(0, MAX_TABLE_ROWS);
  const head = el("tr", {}, ...result.columns.map((c) => el("th", { scope: "col", text: c })));
  const body = shown.map(
    (row) => el("tr", {}, ...result.columns.map((c) => el("td", { text: formatCell(row[c]) }))),
  );
  const caption =
    `${result.rows.length} sessions, seed ${result.seed}` +
    (shown.length < result.rows.length ? ` (first ${shown.length} shown; the CSV has all)` : "");
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { id: "shoppers-table" },
      el("caption", { text: caption }),
      el("thead", {}, head),
      el("tbody", {}, ...body),
    ),
  );
}

function binLabel(edges, i) {
  const short = (v) => (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(3));
  return `${short(edges[i])}–${short(edges[i + 1])}`;
}

function generatedShares(column, rows) {
  if (column.categories) {
    const keys = column.categories.map((c) => String(c));
    const counts = new Array(keys.length).fill(0);
    for (const row of rows) {
      const i = keys.indexOf(String(row[column.name]));
      if (i >= 0) counts[i] += 1;
    }
    return counts.map((c) => c / rows.length);
  }
  const edges = column.edges;
  const counts = new Array(edges.length - 1).fill(0);
  for (const row of rows) {
    const v = row[column.name];
    let i = edges.findIndex((e, k) => k > 0 && v < e) - 1;
    if (i < 0) i = v < edges[0] ? 0 : edges.length - 2;
    counts[i] += 1;
  }
  return counts.map((c) => c / rows.length);
}

function marginalsChart(columns, result, chartBox, picker) {
  const column = columns.find((c) => c.name === picker.value);
  const labels = column.categories
    ? column.categories.map((c) => String(c))
    : column.edges.slice(0, -1).map((_, i) => binLabel(column.edges, i));
  const caption = `${column.name}: share of sessions, generated (${result.rows.length}) vs training`;
  chartBox.replaceChildren(
    barChart(
      labels,
      [
        { name: "training", values: column.training, className: "series-training" },
        {
          name: "generated",
          values: generatedShares(column, result.rows),
          className: "series-generated",
        },
      ],
      caption,
    ),
    el("p", {
      class: "note",
      text:
        "Training shares are aggregates of the training split stored with the model " +
        "(category frequencies; for numbers, the fitted mixture's mass per bin) and are " +
        "unconditional: with conditions set, expect the generated shares to differ.",
    }),
  );
}

function build(root, columns) {
  const discrete = columns.filter((c) => c.categories);
  const count = el("input", { type: "number", min: 1, value: 100, inputmode: "numeric" });
  const seed = el("input", { type: "number", min: 0, placeholder: "random", inputmode: "numeric" });
  const selects = discrete.map(conditionSelect);
  const submit = el("button", { type: "submit", text: "Generate sessions" });
  const csv = el("button", { type: "button", class: "secondary", text: "Download CSV" });
  csv.disabled = true;
  const status = el("div", { class: "status", id: "shoppers-status" });
  const picker = el("select");
  columns.forEach((c) => picker.append(el("option", { value: c.name, text: c.name })));
  picker.value = discrete.some((c) => c.name === "Month") ? "Month" : columns[0].name;
  const chartBox = el("div", { class: "chart-box", id: "shoppers-chart" });
  const tableBox = el("div", { "aria-live": "polite" });
  let last = null;

  const form = el(
    "form",
    { class: "controls", novalidate: "" },
    field("shoppers-count", "Sessions", count),
    field("shoppers-seed", "Seed (blank: random)", seed),
    el(
      "fieldset",
      { class: "conditions" },
      el("legend", { text: "Conditions (categorical columns; every row will meet them)" }),
      ...selects.map((s, i) => field(`shoppers-cond-${discrete[i].name}`, discrete[i].name, s)),
    ),
    el("div", { class: "buttons" }, submit, csv),
  );

  function request(format) {
    const conditions = {};
    selects.forEach((s, i) => {
      if (s.value !== ANY) conditions[discrete[i].name] = discrete[i].categories[Number(s.value)];
    });
    return { count: Number(count.value), seed: seedValue(seed), conditions, format };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = request("json");
    const result = await run(status, submit, "Generating sessions", () =>
      postJSON("shoppers/generate", body),
    );
    if (!result) return;
    last = { ...body, seed: result.seed };
    csv.disabled = false;
    tableBox.replaceChildren(sessionTable(result));
    picker.onchange = () => marginalsChart(columns, result, chartBox, picker);
    marginalsChart(columns, result, chartBox, picker);
  });
  csv.addEventListener("click", () =>
    run(status, csv, "Preparing CSV", async () => {
      const blob = await postForBlob("shoppers/generate", { ...last, format: "csv" });
      download(blob, `shoppers-seed${last.seed}-x${last.count}.csv`);
    }),
  );

  root.append(
    el("h3", { text: "Generate sessions" }),
    form,
    status,
    el("h3", { text: "Generated vs training marginals" }),
    Object.assign(field("shoppers-chart-column", "Column", picker), { className: "field inline" }),
    chartBox,
    el("h3", { text: "Sessions" }),
    tableBox,
  );
}

export function mount(root) {
  const status = el("div", { class: "status", id: "shoppers-load-status" });
  const body = el("div");
  root.append(status, body);
  let loaded = false;
  async function load() {
    if (loaded) return;
    const data = await run(status, null, "Loading vocabularies", () => getJSON("ui/data/shoppers"));
    if (!data || loaded) return;
    loaded = true;
    build(body, data.columns);
  }
  document.addEventListener("ecomgan:token", load);
  load();
}
