// Demand panel: a store's weekly history (prefilled with the API's example, GET /ui/data/demand)
// and stock on hand -> stock-out risk per week (POST /demand/stockout) and the fan chart PNG
// (POST /demand/fan_chart) for the same seed.

import { download, el, getJSON, postForBlob, postJSON, run, seedValue } from "../api.js";

export const title = "Demand";

function field(id, label, input) {
  input.id = id;
  return el("div", { class: "field" }, el("label", { for: id, text: label }), input);
}

function parseHistory(text) {
  const dates = [];
  const sales = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    const [date, value, extra] = line.split(",").map((s) => s.trim());
    if (extra !== undefined || value === undefined || value === "") {
      throw new Error(`history line ${i + 1}: write "YYYY-MM-DD,sales"`);
    }
    dates.push(date);
    sales.push(Number(value));
  });
  return { dates, sales };
}

function numberList(text) {
  const raw = text.trim();
  return raw === "" ? null : raw.split(",").map((s) => Number(s.trim()));
}

function money(v) {
  return v.toLocaleString("en-US", { maximumFractionDigits: 0 });
}

function riskTable(result, level) {
  const w = result.weeks;
  const head = ["week ending", "P(stock-out)", "expected shortfall", `stock needed now (${
    (100 * level).toFixed(0)}% service)`, "supply (stock + receipts)"];
  const rows = w.dates.map((d, i) => el("tr", {},
    el("td", { text: d }),
    el("td", { class: "p-stockout", text: `${(100 * w.p_stockout[i]).toFixed(1)}%` }),
    el("td", { text: money(w.expected_shortfall[i]) }),
    el("td", { text: money(w.stock_needed[i]) }),
    el("td", { text: money(w.supply[i]) })));
  return el("div", { class: "table-wrap" }, el("table", { id: "demand-table" },
    el("caption", { text: `${result.paths} scenario paths, seed ${result.seed}` }),
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows)));
}

function build(root, example) {
  const history = el("textarea", { rows: 8, cols: 40 });
  history.value = example.dates.map((d, i) => `${d},${example.sales[i]}`).join("\n");
  const stock = el("input", { type: "number", min: 0, step: "any", value: example.stock });
  const receipts = el("input", { type: "text", value: (example.receipts || []).join(", ") });
  const horizon = el("input", { type: "number", min: 1, value: example.horizon });
  const paths = el("input", { type: "number", min: 1, max: 10000, value: example.paths });
  const level = el("input", { type: "number", min: 0.01, max: 0.99, step: 0.01,
    value: example.service_level });
  const seed = el("input", { type: "number", min: 0, value: example.seed, inputmode: "numeric" });
  const submit = el("button", { type: "submit", text: "Stock-out risk" });
  const png = el("button", { type: "button", class: "secondary", text: "Download chart" });
  png.disabled = true;
  const status = el("div", { class: "status", id: "demand-status" });
  const chart = el("div", { class: "chart-box", id: "demand-chart" });
  const table = el("div", { "aria-live": "polite" });
  let lastBlob = null;
  let lastSeed = null;

  const form = el("form", { class: "controls", novalidate: "" },
    field("demand-history", "Weekly history (date,sales; oldest first)", history),
    field("demand-stock", "Stock on hand", stock),
    field("demand-receipts", "Receipts per week (comma-separated)", receipts),
    field("demand-horizon", "Weeks ahead", horizon),
    field("demand-paths", "Paths", paths),
    field("demand-level", "Service level", level),
    field("demand-seed", "Seed (blank: random)", seed),
    el("div", { class: "buttons" }, submit, png));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await run(status, submit, "Simulating demand", async () => {
      const body = {
        ...parseHistory(history.value),
        stock: Number(stock.value),
        receipts: numberList(receipts.value),
        horizon: Number(horizon.value),
        paths: Number(paths.value),
        service_level: Number(level.value),
        seed: seedValue(seed),
      };
      const risk = await postJSON("demand/stockout", body);
      // The chart replays the seed the risk answer used, so both show the same paths.
      const blob = await postForBlob("demand/fan_chart", { ...body, seed: risk.seed });
      return { risk, blob, level: body.service_level };
    });
    if (!result) return;
    lastBlob = result.blob;
    lastSeed = result.risk.seed;
    png.disabled = false;
    chart.dataset.seed = lastSeed;
    chart.replaceChildren(el("img", { src: URL.createObjectURL(result.blob),
      alt: `fan chart of demand scenarios, seed ${lastSeed}` }));
    table.replaceChildren(riskTable(result.risk, result.level));
  });
  png.addEventListener("click", () => download(lastBlob, `demand-seed${lastSeed}.png`));
  root.append(el("h3", { text: "Stock-out risk" }), form, status, chart, table);
}

export function mount(root) {
  const status = el("div", { class: "status", id: "demand-load-status" });
  const body = el("div");
  root.append(status, body);
  let loaded = false;
  async function load() {
    if (loaded) return;
    const data = await run(status, null, "Loading the example", () => getJSON("ui/data/demand"));
    if (!data || loaded) return;
    loaded = true;
    build(body, data.examples.demand_stockout);
  }
  document.addEventListener("ecomgan:token", load);
  load();
}
