"""The demand and reviews panels of the web UI, in a real headless Chromium against a real
`bentoml serve`: every value shown equals what the same request to the API answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from serving.demand import EXAMPLE_STOCKOUT
from tests.integration.test_ui import browser, open_ui, shots  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

REVIEW = ("We stayed three nights for a conference. The room was quiet, the bed comfortable and "
          "the front desk let us check in early. Breakfast was pricey but good.")  # fmt: skip


def test_reviews_panel(server, browser, shots):  # noqa: F811
    url = server.url
    page, errors = open_ui(browser, url)
    page.wait_for_selector("#reviews-text")
    page.fill("#reviews-text", REVIEW)
    page.click("#panel-reviews form:nth-of-type(1) button[type=submit]")
    result = page.wait_for_selector("#reviews-score-result")
    body = httpx.post(url + "/reviews/score", json={"texts": [REVIEW]}).json()
    assert page.locator(".p-deceptive").inner_text() == (
        f"{100 * body['results'][0]['p_deceptive']:.1f}%"
    )
    decision = page.locator("#reviews-score-result .decision").inner_text()
    assert decision == body["results"][0]["label"]
    assert f"{100 * body['target_fpr']:.1f}% of truthful reviews" in result.inner_text()

    page.select_option("#reviews-polarity", "negative")
    page.fill("#reviews-count", "2")
    page.fill("#reviews-seed", "5")
    page.click("#panel-reviews form:nth-of-type(2) button[type=submit]")
    page.wait_for_selector("#reviews-generated[data-seed='5'] blockquote")
    generated = httpx.post(url + "/reviews/generate",
                           json={"polarity": "negative", "count": 2, "seed": 5}).json()  # fmt: skip
    shown = page.locator("#reviews-generated blockquote").all_inner_texts()
    assert shown == [f"SYNTHETIC {r['text']}" for r in generated["reviews"]]
    assert "non-commercial" in page.locator("#reviews-generated .note").inner_text()

    page.locator("#panel-reviews").screenshot(path=str(shots / "reviews.png"))
    assert errors == []  # before the refused request below, which the console reports

    page.fill("#reviews-text", "   ")
    page.click("#panel-reviews form:nth-of-type(1) button[type=submit]")
    shown = page.wait_for_selector("#reviews-score-status .api-error").inner_text()
    refused = httpx.post(url + "/reviews/score", json={"texts": ["   "]})
    assert refused.status_code == 400 and shown == refused.json()["error"]
    page.close()


def test_demand_panel(server, browser, shots):  # noqa: F811
    url = server.url
    page, errors = open_ui(browser, url)
    page.wait_for_selector("#demand-history")
    assert page.input_value("#demand-stock") == str(EXAMPLE_STOCKOUT["stock"]).removesuffix(".0")
    page.click("#panel-demand button[type=submit]")
    page.wait_for_selector("#demand-table")
    risk = httpx.post(url + "/demand/stockout", json=EXAMPLE_STOCKOUT, timeout=60).json()
    cells = page.locator("#demand-table td.p-stockout").all_inner_texts()
    assert cells == [f"{100 * p:.1f}%" for p in risk["weeks"]["p_stockout"]]
    assert page.get_attribute("#demand-chart", "data-seed") == str(EXAMPLE_STOCKOUT["seed"])
    with page.expect_download() as download:
        page.click("#panel-demand button.secondary")
    png = httpx.post(url + "/demand/fan_chart", json=EXAMPLE_STOCKOUT, timeout=60).content
    assert Path(download.value.path()).read_bytes() == png

    page.locator("#panel-demand").screenshot(path=str(shots / "demand.png"))
    assert errors == []  # before the refused request below, which the console reports

    page.fill("#demand-paths", "20000")
    page.click("#panel-demand button[type=submit]")
    shown = page.wait_for_selector("#demand-status .api-error").inner_text()
    refused = httpx.post(url + "/demand/stockout", json={**EXAMPLE_STOCKOUT, "paths": 20000})
    assert refused.status_code == 400 and shown == refused.json()["error"]
    page.close()
