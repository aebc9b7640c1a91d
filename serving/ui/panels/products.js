// Products panel: a gallery per category (POST /products/generate, PNG from
// /products/generate_png with the seed the response returned) and the detector on an upload
// (POST /products/score; the threshold's meaning from OIP model metadata).

import { download, el, getJSON, postForBlob, postForm, postJSON, run, seedValue } from "../api.js";

export const title = "Products";
const ALL = "__all__";

function field(id, label, input) {
  input.id = id;
  return el("div", { class: "field" }, el("label", { for: id, text: label }), input);
}

function categorySelect(classes, withAll) {
  const select = el("select");
  if (withAll) select.append(el("option", { value: ALL, text: "All categories" }));
  for (const name of classes) select.append(el("option", { value: name, text: name }));
  return select;
}

function toImage(pixels, alt) {
  const size = pixels.length;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(size, size);
  pixels.flat().forEach((v, i) => {
    data.data.set([v, v, v, 255], i * 4);
  });
  ctx.putImageData(data, 0, 0);
  return el("img", { src: canvas.toDataURL("image/png"), alt, width: 84, height: 84 });
}

function galleryRow(result, count, status) {
  const button = el("button", { type: "button", class: "secondary", text: "Download PNG" });
  button.addEventListener("click", () =>
    run(status, button, "Rendering PNG", async () => {
      const body = { category: result.category, count, seed: result.seed, nrow: 8 };
      const blob = await postForBlob("products/generate_png", body);
      const name = result.category.replace(/[^A-Za-z0-9]+/g, "-").toLowerCase();
      download(blob, `${name}-seed${result.seed}-x${count}.png`);
    }),
  );
  const images = result.images.map((pixels, i) =>
    toImage(pixels, `${result.category}, seed ${result.seed}, image ${i + 1}`),
  );
  return el(
    "figure",
    { class: "gallery-row", "data-category": result.category, "data-seed": result.seed },
    el("div", { class: "images" }, ...images),
    el(
      "figcaption",
      {},
      el("strong", { text: result.category }),
      ` seed ${result.seed} (same seed, same images) `,
      button,
    ),
  );
}

function galleryForm(root, family) {
  const category = categorySelect(family.classes, true);
  category.value = family.classes.includes("Sneaker") ? "Sneaker" : family.classes[0];
  const count = el("input", { type: "number", min: 1, value: 8, inputmode: "numeric" });
  const seed = el("input", { type: "number", min: 0, placeholder: "random", inputmode: "numeric" });
  const submit = el("button", { type: "submit", text: "Generate" });
  const status = el("div", { class: "status", id: "products-generate-status" });
  const gallery = el("div", { class: "gallery", id: "products-gallery", "aria-live": "polite" });
  const form = el(
    "form",
    { class: "controls", novalidate: "" },
    field("products-category", "Category", category),
    field("products-count", "Images per category", count),
    field("products-seed", "Seed (blank: random)", seed),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const n = Number(count.value);
    const names = category.value === ALL ? family.classes : [category.value];
    const results = await run(status, submit, "Generating", async (progress) => {
      let done = 0;
      progress(done, names.length);
      return Promise.all(
        names.map(async (name) => {
          const body = { category: name, count: n, seed: seedValue(seed) };
          const result = await postJSON("products/generate", body);
          progress(++done, names.length);
          return result;
        }),
      );
    });
    if (results) gallery.replaceChildren(...results.map((r) => galleryRow(r, n, status)));
  });
  root.append(el("h3", { text: "Generate a gallery" }), form, status, gallery);
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

function scoreResult(score, category, targetFpr) {
  const synthetic = score.label === "synthetic";
  const meaning =
    targetFpr === null
      ? "The threshold was calibrated on real test images."
      : `The threshold is calibrated so that ${percent(targetFpr)} of real product photos ` +
        "are wrongly called synthetic: \"synthetic\" is strong evidence; \"real\" means only " +
        "that the detector did not catch it, and it misses part of what generators produce.";
  return el(
    "div",
    { class: `score-result ${synthetic ? "synthetic" : "real"}`, id: "products-score-result" },
    el(
      "p",
      {},
      "p(synthetic) = ",
      el("strong", { class: "p-synthetic", text: percent(score.p_synthetic) }),
      ` for a ${category}: `,
      el("strong", { class: "decision", text: score.label }),
      ` (threshold ${percent(score.threshold)}: synthetic when p(synthetic) ≥ threshold).`,
    ),
    el("p", { class: "note", text: meaning }),
  );
}

async function targetFpr() {
  try {
    const meta = await getJSON("v2/models/products-discriminator");
    const value = Number(meta.parameters?.target_fpr);
    return Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

function scoreForm(root, family) {
  const file = el("input", { type: "file", accept: "image/png,image/jpeg" });
  const category = categorySelect(family.classes, false);
  const submit = el("button", { type: "submit", text: "Score" });
  const status = el("div", { class: "status", id: "products-score-status" });
  const preview = el("div", { class: "preview" });
  const output = el("div", { "aria-live": "polite" });
  const form = el(
    "form",
    { class: "controls", novalidate: "" },
    field("products-upload", "Product photo (28×28 grayscale PNG or JPEG)", file),
    field("products-score-category", "Its category", category),
    submit,
  );
  file.addEventListener("change", () => {
    preview.replaceChildren();
    if (file.files.length) {
      const src = URL.createObjectURL(file.files[0]);
      preview.append(el("img", { src, alt: "uploaded photo", width: 84, height: 84 }));
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    output.replaceChildren();
    if (!file.files.length) {
      status.className = "status error";
      status.replaceChildren(el("span", { role: "alert", text: "choose an image file first" }));
      return;
    }
    const body = new FormData();
    body.append("image", file.files[0], file.files[0].name);
    body.append("category", category.value);
    const chosen = category.value;
    const score = await run(status, submit, "Scoring", () => postForm("products/score", body));
    if (score) output.replaceChildren(scoreResult(score, chosen, await targetFpr()));
  });
  root.append(
    el("h3", { text: "Is this photo synthetic?" }),
    form,
    el("div", { class: "score-row" }, preview, output),
    status,
  );
}

export function mount(root, family) {
  galleryForm(root, family);
  scoreForm(root, family);
}
