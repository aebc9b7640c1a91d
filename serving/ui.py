"""The project's root page (`/`), the web UI (`/ui`) and the API docs page (`/docs`).

Mounted into the entry service beside the OIP routes; BentoML routes here only the paths these
routes match, and ahead of its own index page. The UI is static (`serving/ui/`: HTML, plain JS
modules, CSS; no build step, nothing loaded from other origins) and calls the same JSON APIs a
client would. One panel per family: `serving/ui/panels/<family>.js`; a family gets its panel on
the page as soon as that file exists.
"""

from __future__ import annotations

import html
import importlib.metadata
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import ecomgan
from ecomgan.families import FAMILIES, model_names
from serving.errors import ServingError, Unavailable

UI_DIR = Path(__file__).resolve().parent / "ui"
PANELS_DIR = UI_DIR / "panels"
CONFIG_MARK = "<!--ECOMGAN_CONFIG-->"
_GTM = re.compile(r"\s*<!-- Google Tag Manager.*?<!-- End Google Tag Manager[^>]*-->", re.S)


def project_metadata() -> dict[str, str]:
    """Name, one-line description and version of the installed `ecomgan` distribution.

    Falls back to the package's ``__version__`` where it runs from source without being
    installed (as in a bento, which ships the modules, not the distribution).
    """
    try:
        meta = importlib.metadata.metadata("ecomgan")
        return {"name": meta["Name"], "description": meta["Summary"], "version": meta["Version"]}
    except importlib.metadata.PackageNotFoundError:
        return {
            "name": "ecomgan",
            "description": "GANs for e-commerce: trained in PyTorch, exported to ONNX, served "
            "from a BentoML bento over HTTP and gRPC",
            "version": ecomgan.__version__,
        }


def panel_families() -> list[dict[str, Any]]:
    """Registered families that have a UI panel, in registry order, with what panels need."""
    return [
        {"name": f.name, "description": f.description, "classes": list(f.classes)}
        for f in FAMILIES.values()
        if (PANELS_DIR / f"{f.name}.js").is_file()
    ]


def _entry() -> Any:
    import bentoml

    entry = bentoml.get_current_service()
    if entry is None or not hasattr(entry, "gateway"):
        raise Unavailable("the service is still starting")
    return entry


def _grpc_port() -> int | None:
    from serving.settings import Settings

    settings = Settings.from_env()
    return settings.grpc_port if settings.grpc else None


@lru_cache(maxsize=1)
def _ui_page() -> str:
    config = {"project": project_metadata(), "families": panel_families()}
    blob = json.dumps(config).replace("</", "<\\/")
    tag = f'<script type="application/json" id="ecomgan-config">{blob}</script>'
    return (UI_DIR / "index.html").read_text(encoding="utf-8").replace(CONFIG_MARK, tag)


async def ui_page(request: Request) -> Response:
    return HTMLResponse(await anyio.to_thread.run_sync(_ui_page))


async def ui_slash(request: Request) -> Response:
    return RedirectResponse("../ui", status_code=308)


@lru_cache(maxsize=1)
def _docs_page() -> str:
    from _bentoml_impl import server

    page = (Path(server.__file__).parent / "main-openapi.html").read_text(encoding="utf-8")
    return _GTM.sub("", page).replace(
        "<title>BentoML Prediction Service</title>", "<title>ecomgan API docs</title>"
    )


async def docs_page(request: Request) -> Response:
    """BentoML's Swagger UI (the page it serves at `/` by default), without its tag manager."""
    return HTMLResponse(await anyio.to_thread.run_sync(_docs_page))


async def family_data(request: Request) -> Response:
    """What a family's panel needs beyond its APIs (`serving.ui_data.provider`)."""
    from serving.ui_data import provider as provider_of

    family = request.path_params["family"]
    provider = provider_of(family)
    if provider is None:
        known = ", ".join(FAMILIES)
        return JSONResponse(
            {"error": f"no UI data for {family!r}; families with UI data: {known}"},
            status_code=404,
        )
    try:
        entry = _entry()
        return JSONResponse(await anyio.to_thread.run_sync(provider, entry))
    except ServingError as exc:
        return JSONResponse({"error": exc.message}, status_code=int(exc.http_status))


def _versions() -> dict[str, str]:
    try:
        catalog = _entry().catalog
    except Unavailable:
        return {}
    return {name: served.version for name, served in catalog.items()}


def render_root(host: str) -> str:
    """The root page: what the project is, where the UI and docs are, what is served."""
    from serving.oip_http import ROUTES_HELP

    meta = {k: html.escape(v or "") for k, v in project_metadata().items()}
    versions = _versions()
    models = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td>"
        f"<td>{html.escape(versions.get(name, '-'))}</td></tr>"
        for name in model_names()
    )
    families = "".join(
        f"<li><strong>{html.escape(f.name)}</strong>: {html.escape(f.description)}</li>"
        for f in FAMILIES.values()
    )
    port = _grpc_port()
    grpc = (
        f"<code>{html.escape(host)}:{port}</code>: <code>inference.GRPCInferenceService</code> "
        "and <code>grpc.health.v1.Health</code>"
        if port
        else "disabled (<code>ECOMGAN_GRPC=off</code>)"
    )
    oip_routes = "".join(
        f"<li><code>{html.escape(route.strip())}</code></li>" for route in ROUTES_HELP.split(";")
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{meta["name"]} {meta["version"]}</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="ui/static/style.css">
</head><body><main class="root">
<h1>{meta["name"]} <span class="version">{meta["version"]}</span></h1>
<p class="lead">{meta["description"]}</p>
<ul class="links">
<li><a href="ui">Web UI</a>: one panel per model family, on the same JSON APIs.</li>
<li><a href="docs">API docs</a> (Swagger UI) and the <a href="docs.json">OpenAPI spec</a>.</li>
<li><a href="metrics">Prometheus metrics</a>, <a href="livez">/livez</a>,
<a href="readyz">/readyz</a>.</li>
</ul>
<h2>Families</h2><ul>{families}</ul>
<h2>Served models</h2>
<table><thead><tr><th>model</th><th>version</th></tr></thead><tbody>{models}</tbody></table>
<h2>Open Inference Protocol v2</h2>
<p>HTTP, on this port:</p><ul>{oip_routes}</ul>
<p>gRPC: {grpc}.</p>
<p class="note">When the server requires a bearer token (<code>ECOMGAN_API_TOKEN</code>), every
API, the docs' spec and <code>/v2</code> need <code>Authorization: Bearer &lt;token&gt;</code>;
the web UI has a field for it.</p>
</main></body></html>
"""


async def root_page(request: Request) -> Response:
    host = request.url.hostname or "localhost"
    return HTMLResponse(await anyio.to_thread.run_sync(render_root, host))


app = Starlette(
    routes=[
        Route("/", root_page, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Route("/ui", ui_page, methods=["GET"]),
        Route("/ui/", ui_slash, methods=["GET"]),
        Route("/ui/data/{family}", family_data, methods=["GET"]),
        Mount("/ui/static", app=StaticFiles(directory=UI_DIR), name="ui-static"),
    ],
)
