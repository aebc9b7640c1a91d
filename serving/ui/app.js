// Page shell: project header, the token field, then one panel per family that has a module
// in ./panels/ (the server lists them in the page's config).

import { el, setToken } from "./api.js";

const config = JSON.parse(document.getElementById("ecomgan-config").textContent);

document.getElementById("version").textContent = config.project.version;
document.getElementById("description").textContent = config.project.description;

const tokenInput = document.getElementById("token");
tokenInput.addEventListener("change", () => setToken(tokenInput.value));
document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken(tokenInput.value);
});

const nav = document.getElementById("family-nav");
const main = document.getElementById("panels");

for (const family of config.families) {
  const section = el("section", {
    id: `panel-${family.name}`,
    class: "panel",
    "aria-labelledby": `panel-${family.name}-title`,
  });
  main.append(section);
  nav.append(el("a", { href: `#panel-${family.name}`, text: family.name }));
  try {
    const panel = await import(`./panels/${family.name}.js`);
    section.append(
      el("h2", { id: `panel-${family.name}-title`, text: panel.title }),
      el("p", { class: "lead", text: family.description }),
    );
    panel.mount(section, family);
  } catch (err) {
    section.append(el("p", { class: "status error", text: `panel failed: ${err.message}` }));
    throw err;
  }
}
