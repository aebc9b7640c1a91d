"""The root page and the web UI, in a real headless Chromium against a real `bentoml serve`.

Every value the page shows is checked against what the same request to the API answers.
Screenshots go to a temporary folder, or to ``$ECOMGAN_UI_SCREENSHOTS`` (the README's: run
``ECOMGAN_UI_SCREENSHOTS=docs/ui python -m pytest -q tests/integration/test_ui.py``).
"""

from __future__ import annotations

import base64
import html
import importlib.metadata
import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from ecomgan.families import FAMILIES, model_names
from gan.products.data import read_idx_gz
from serving.ui import panel_families
from tests.conftest import REPO, start_server, stop_server

pytestmark = pytest.mark.integration
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "ui-token-7d1e0b"
TMP_NAME = re.compile(r"\btmp\w*?photo\.png")


def chromium() -> str | None:
    """Debian's Chromium (never a browser Playwright would download)."""
    return os.environ.get("ECOMGAN_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium()
    if not path:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); .ci/run does")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = os.environ.get("ECOMGAN_UI_SCREENSHOTS")
    path = (REPO / folder) if folder else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def trouser_png(data_dir, tmp_path_factory) -> Path:
    """The first Trouser of the Fashion-MNIST test split, as a 28x28 grayscale PNG."""
    folder = data_dir / "fashion-mnist"
    images = read_idx_gz(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx_gz(folder / "t10k-labels-idx1-ubyte.gz")
    path = tmp_path_factory.mktemp("upload") / "trouser.png"
    Image.fromarray(images[int(np.argmax(labels == 1))], mode="L").save(path)
    return path


def open_ui(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page.set_default_timeout(60_000)  # a shared CI machine can be slow; failures still fail
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/ui")
    return page, errors


def api_error(url: str, path: str, **kwargs) -> str:
    r = httpx.post(url + path, timeout=30, **kwargs)
    assert r.status_code == 400, r.text
    return r.json()["error"]


def test_root_page_names_the_project_and_lists_what_is_served(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    meta = importlib.metadata.metadata("ecomgan")
    assert f'{meta["Name"]} <span class="version">{meta["Version"]}</span>' in page
    assert meta["Summary"] in page
    for link in ('href="ui"', 'href="docs"', 'href="docs.json"'):
        assert link in page
    for name in model_names():
        version = httpx.get(f"{server.url}/v2/models/{name}").json()["versions"][0]
        assert f"<tr><td><code>{name}</code></td><td>{version}</td></tr>" in page
    for family in FAMILIES.values():
        assert html.escape(family.description) in page
    assert "POST /v2/models/{m}[/versions/{v}]/infer" in page
    assert f"127.0.0.1:{server.grpc_target.rsplit(':', 1)[1]}</code>" in page
    assert "BentoML Prediction Service" not in page

    assert httpx.get(server.url + "/ui/").headers["location"] == "../ui"
    missing = httpx.get(server.url + "/ui/data/nope")
    assert missing.status_code == 404 and "shoppers" in missing.json()["error"]
    docs = httpx.get(server.url + "/docs")
    assert docs.status_code == 200 and 'id="swagger-ui"' in docs.text
    assert "googletagmanager" not in docs.text
    assert httpx.get(server.url + "/static_content/swagger-ui-bundle.js").status_code == 200
    spec = httpx.get(server.url + "/docs.json").json()
    assert "/products/generate" in spec["paths"] and "/shoppers/generate" in spec["paths"]


def test_ui_panels_in_chromium(server, browser, trouser_png, shots, tmp_path):
    url = server.url
    page, errors = open_ui(browser, url)
    page.wait_for_selector("#shoppers-count")
    assert page.locator("section.panel").count() == len(panel_families())
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('input, select')].filter(e => !e.labels.length).length"
    )
    assert unlabelled == 0
    assert page.locator("#panel-products h2").inner_text() == "Products"

    # Products: one category, fixed seed; pixels and PNG as the API gives them.
    page.select_option("#products-category", "Trouser")
    page.fill("#products-count", "5")
    page.fill("#products-seed", "7")
    page.click("#panel-products button[type=submit]")
    page.wait_for_selector("#products-gallery figure[data-seed='7']")
    images = page.locator("#products-gallery img")
    assert images.count() == 5
    expected = httpx.post(
        url + "/products/generate", json={"category": "Trouser", "count": 5, "seed": 7}
    ).json()
    src = images.nth(4).get_attribute("src")
    shown = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L")
    assert np.array_equal(np.asarray(shown), np.asarray(expected["images"][4], dtype=np.uint8))
    with page.expect_download() as download:
        page.click("#products-gallery figcaption button")
    png = httpx.post(
        url + "/products/generate_png",
        json={"category": "Trouser", "count": 5, "seed": 7, "nrow": 8},
    ).content
    assert Path(download.value.path()).read_bytes() == png

    # A blank seed draws one; the page shows the seed the API returned.
    page.fill("#products-seed", "")
    page.fill("#products-count", "2")
    page.click("#panel-products button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#products-gallery img').length === 2")
    drawn = int(page.locator("#products-gallery figure").get_attribute("data-seed"))
    again = httpx.post(
        url + "/products/generate", json={"category": "Trouser", "count": 2, "seed": drawn}
    ).json()
    src = page.locator("#products-gallery img").first.get_attribute("src")
    shown = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L")
    assert np.array_equal(np.asarray(shown), np.asarray(again["images"][0], dtype=np.uint8))

    # Every category, one row each (what the screenshot shows).
    page.select_option("#products-category", "__all__")
    page.fill("#products-count", "8")
    page.fill("#products-seed", "42")
    page.click("#panel-products button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#products-gallery img').length === 80")
    assert page.locator("#products-gallery figure").count() == len(FAMILIES["products"].classes)

    # Upload a real test image: the score and decision the API gives for that file.
    page.set_input_files("#products-upload", str(trouser_png))
    page.select_option("#products-score-category", "Trouser")
    page.click("#panel-products form:nth-of-type(2) button[type=submit]")
    result = page.wait_for_selector("#products-score-result")
    with trouser_png.open("rb") as f:
        score = httpx.post(
            url + "/products/score",
            files={"image": ("trouser.png", f, "image/png")},
            data={"category": "Trouser"},
        ).json()
    assert page.locator(".p-synthetic").inner_text() == f"{100 * score['p_synthetic']:.1f}%"
    assert page.locator(".decision").inner_text() == score["label"]
    meta = httpx.get(url + "/v2/models/products-discriminator").json()["parameters"]
    assert f"{100 * float(meta['target_fpr']):.1f}% of real product photos" in result.inner_text()
    page.locator("#panel-products").screenshot(path=str(shots / "products.png"))

    # Shoppers: conditions from the vocabularies; rows, CSV and chart as the API gives them.
    page.fill("#shoppers-count", "7")
    page.fill("#shoppers-seed", "3")
    page.select_option("#shoppers-cond-Revenue", label="true")
    page.select_option("#shoppers-cond-VisitorType", label="New_Visitor")
    page.click("#panel-shoppers button[type=submit]")
    page.wait_for_selector("#shoppers-table")
    body = {
        "count": 7,
        "seed": 3,
        "conditions": {"Revenue": True, "VisitorType": "New_Visitor"},
        "format": "json",
    }
    rows = httpx.post(url + "/shoppers/generate", json=body).json()["rows"]
    headers = page.locator("#shoppers-table thead th").all_inner_texts()
    cells = [
        dict(zip(headers, r.locator("td").all_inner_texts(), strict=True))
        for r in page.locator("#shoppers-table tbody tr").all()
    ]
    assert len(cells) == 7
    assert all(c["Revenue"] == "true" and c["VisitorType"] == "New_Visitor" for c in cells)
    assert [c["Month"] for c in cells] == [r["Month"] for r in rows]
    assert [c["ProductRelated"] for c in cells] == [str(r["ProductRelated"]) for r in rows]
    with page.expect_download() as download:
        page.click("#panel-shoppers button.secondary")
    csv = httpx.post(url + "/shoppers/generate", json={**body, "format": "csv"}).content
    assert Path(download.value.path()).read_bytes() == csv
    chart = page.locator("#shoppers-chart svg")
    assert chart.locator("rect.series-generated").count() == 1 + 10  # legend + 10 months
    page.select_option("#shoppers-chart-column", "ProductRelated_Duration")
    assert chart.locator("rect.series-training").count() == 1 + 12
    # Progress while a request is out: hold it in the browser, then let it through.
    held = []
    page.route("**/shoppers/generate", lambda route: held.append(route))
    page.fill("#shoppers-count", "1000")
    page.select_option("#shoppers-cond-VisitorType", label="(any)")
    page.click("#panel-shoppers button[type=submit]")
    page.wait_for_selector("#shoppers-status progress")
    assert page.locator("#panel-shoppers button[type=submit]").is_disabled()
    held[0].continue_()
    page.unroute("**/shoppers/generate")
    page.wait_for_selector("#shoppers-table caption:has-text('1000 sessions, seed 3')")
    assert page.locator("#shoppers-status progress").count() == 0
    assert page.locator("#shoppers-table tbody tr").count() == 200  # the rest is in the CSV
    page.select_option("#shoppers-chart-column", "Month")
    page.locator("#panel-shoppers").screenshot(path=str(shots / "shoppers.png"))
    assert errors == []
    root = browser.new_page(viewport={"width": 1000, "height": 700})
    root.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    root.goto(url + "/")
    root.screenshot(path=str(shots / "root.png"), full_page=True)
    root.close()
    assert errors == []

    # Invalid input: the API's own words.
    page.fill("#products-count", "0")
    page.select_option("#products-category", "Bag")
    page.click("#panel-products button[type=submit]")
    shown = page.wait_for_selector("#products-generate-status .api-error").inner_text()
    bad = {"category": "Bag", "count": 0, "seed": 42}
    assert shown == api_error(url, "/products/generate", json=bad)

    rgb = tmp_path / "photo.png"
    Image.new("RGB", (28, 28), (200, 30, 30)).save(rgb)
    page.set_input_files("#products-upload", str(rgb))
    page.click("#panel-products form:nth-of-type(2) button[type=submit]")
    shown = page.wait_for_selector("#products-score-status .api-error").inner_text()
    with rgb.open("rb") as f:
        files = {"image": ("photo.png", f, "image/png")}
        expected = api_error(url, "/products/score", files=files, data={"category": "Trouser"})
    # BentoML stores an upload under a random temporary name, which the message names.
    assert TMP_NAME.sub("photo.png", shown) == TMP_NAME.sub("photo.png", expected)

    page.fill("#shoppers-count", "20000")
    page.click("#panel-shoppers button[type=submit]")
    shown = page.wait_for_selector("#shoppers-status .api-error").inner_text()
    assert shown == api_error(url, "/shoppers/generate", json={**body, "count": 20000})
    page.close()


def test_ui_behind_bearer_token(shipped_home, browser, tmp_path):
    srv = start_server(shipped_home, tmp_path / "serve.log", {"ECOMGAN_API_TOKEN": TOKEN})
    try:
        for path in ("/", "/ui", "/ui/static/app.js"):
            assert httpx.get(srv.url + path).status_code == 200, path
        refused = httpx.get(srv.url + "/ui/data/shoppers")
        assert refused.status_code == 401
        page, _ = open_ui(browser, srv.url)
        shown = page.wait_for_selector("#shoppers-load-status .api-error").inner_text()
        assert shown == refused.json()["error"]

        page.fill("#token", TOKEN)
        page.press("#token", "Enter")
        page.wait_for_selector("#shoppers-count")
        page.fill("#products-count", "3")
        page.fill("#products-seed", "1")
        page.click("#panel-products button[type=submit]")
        page.wait_for_function("document.querySelectorAll('#products-gallery img').length === 3")
        stored = page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]")
        assert stored == [0, 0, ""]
        page.close()
        assert TOKEN not in srv.log_text()
    finally:
        stop_server(srv)
