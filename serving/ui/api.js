// Same-origin calls to the service's APIs, the bearer token (page memory only) and the
// shared status line (progress, errors worded by the API).

const ROOT = new URL("../../", import.meta.url);
let token = "";

export function setToken(value) {
  token = value.trim();
  document.dispatchEvent(new CustomEvent("ecomgan:token"));
}

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function errorMessage(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "string") return body.error;
  } catch {
    // not JSON: show the body as the server sent it
  }
  return text.trim() || `${response.status} ${response.statusText}`;
}

async function send(path, init = {}) {
  const headers = new Headers(init.headers || {});
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let response;
  try {
    response = await fetch(new URL(path, ROOT), { ...init, headers });
  } catch (err) {
    throw new ApiError(`cannot reach the server (${err.message})`, 0);
  }
  if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
  return response;
}

function jsonInit(body) {
  return {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
}

export async function getJSON(path) {
  return (await send(path)).json();
}

export async function postJSON(path, body) {
  return (await send(path, jsonInit(body))).json();
}

export async function postForBlob(path, body) {
  return (await send(path, jsonInit(body))).blob();
}

export async function postForm(path, form) {
  return (await send(path, { method: "POST", body: form })).json();
}

export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// A status line under a form: progress with elapsed time while `work` runs, then its error
// (the API's own words) or nothing. `button` is disabled meanwhile. Returns work's result,
// or undefined when it failed.
export async function run(status, button, label, work) {
  const started = performance.now();
  const progress = el("progress", { "aria-label": label });
  const text = el("span", { text: `${label}…` });
  status.className = "status busy";
  status.replaceChildren(progress, text);
  const timer = setInterval(() => {
    text.textContent = `${label}… ${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 200);
  if (button) button.disabled = true;
  try {
    const result = await work((done, total) => {
      progress.max = total;
      progress.value = done;
    });
    status.className = "status";
    status.replaceChildren();
    return result;
  } catch (err) {
    status.className = "status error";
    status.replaceChildren(el("span", { role: "alert", class: "api-error", text: err.message }));
    return undefined;
  } finally {
    clearInterval(timer);
    if (button) button.disabled = false;
  }
}

// The seed field: an integer, or null (blank) for a random seed the response reports.
export function seedValue(input) {
  const raw = input.value.trim();
  return raw === "" ? null : Number(raw);
}
