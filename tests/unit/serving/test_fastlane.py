"""The fast lane in process: what it answers itself, what it hands to BentoML, and its limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import bentoml
import httpx
import pytest
from _bentoml_sdk.service import set_current_service

from serving.errors import NotFound
from serving.fastlane import OIP_INFER, FastLane, _oip_target, json_routes
from serving.settings import Settings


@bentoml.service
class Toy:
    @bentoml.api(route="/toy/echo")
    async def echo(self, n: int, text: str = "x") -> dict:
        if n == 404:
            raise NotFound("no such n")
        if n == 500:
            raise RuntimeError("a bug")
        if n < 0:
            await asyncio.sleep(-n / 1000)
        return {"n": n, "text": text, "values": [0.1, 1e-7, None]}

    @bentoml.api(route="/toy/upload")
    async def upload(self, image: Path) -> dict:
        return {}

    @bentoml.api(route="/toy/sync")
    def sync(self, n: int) -> dict:
        return {"n": n}


async def downstream(scope, receive, send) -> None:
    """Stands in for BentoML's app: says that it was reached."""
    body = b'{"downstream":true}'
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def entry():
    instance = Toy()
    instance.gateway = None  # what marks an entry service instance
    set_current_service(instance)
    yield instance
    set_current_service(None)


def client(**env: str) -> httpx.AsyncClient:
    lane = FastLane(downstream, Toy.apis, Settings.parse(env))
    lane._record = lambda *args: None  # Prometheus needs a BentoML server process
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=lane), base_url="http://t")


def run(coro):
    return asyncio.run(coro)


def test_only_json_in_json_out_async_apis_take_the_fast_lane():
    assert set(json_routes(Toy.apis)) == {"/toy/echo"}


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/v2/models/m/infer", ("m", None)),
        ("/v2/models/m/versions/3/infer", ("m", "3")),
        ("/v2/models/m", None),
        ("/v2/models//infer", None),
        ("/v2/models/m/versions/3", None),
        ("/v2/models/m/ready", None),
    ],
)
def test_oip_inference_paths(path, expected):
    assert _oip_target(path) == expected
    assert OIP_INFER.endswith("/infer")


def test_answers_a_json_api_itself(entry):
    async def go():
        async with client() as c:
            r = await c.post("/toy/echo", json={"n": 3})
            return r

    r = run(go())
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"n": 3, "text": "x", "values": [0.1, 1e-7, None]}


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/toy/echo"), ("POST", "/toy/upload"), ("POST", "/toy/sync"), ("POST", "/other")],
)
def test_hands_everything_else_to_bentoml(entry, method, path):
    async def go():
        async with client() as c:
            return await c.request(method, path, json={"n": 1})

    assert run(go()).status_code == 299


def test_hands_over_while_the_service_is_starting():
    set_current_service(None)

    async def go():
        async with client() as c:
            return await c.post("/toy/echo", json={"n": 1})

    assert run(go()).status_code == 299


@pytest.mark.parametrize(
    "body, headers, status, words",
    [
        (b'{"n": 1, "m": 2}', {}, 400, "unknown field 'm'; /toy/echo accepts: n, text"),
        (b'{"n": "1"}', {}, 400, "n must be an integer"),
        (b'{"text": "a"}', {}, 400, "missing required field 'n'"),
        (b"[1]", {}, 400, "must be a JSON object"),
        (b"{", {}, 400, "not valid JSON"),
        (b'{"n": 1}', {"content-type": "text/csv"}, 415, "Content-Type 'text/csv'"),
        (b'{"n": 1, "text": "' + b"a" * 100 + b'"}', {}, 413, "the limit is 64 bytes"),
        (b'{"n": 404}', {}, 404, "no such n"),
        (b'{"n": 500}', {}, 500, "internal error; see the server log"),
    ],
)
def test_refusals_say_what_is_wrong(entry, body, headers, status, words):
    async def go():
        async with client(ECOMGAN_MAX_BODY_BYTES="64") as c:
            return await c.post("/toy/echo", content=body, headers=headers)

    r = run(go())
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_bearer_token(entry):
    async def go(headers):
        async with client(ECOMGAN_API_TOKEN="s3cret") as c:
            return await c.post("/toy/echo", json={"n": 1}, headers=headers)

    refused = run(go({}))
    assert refused.status_code == 401 and "Bearer" in refused.headers["www-authenticate"]
    assert run(go({"authorization": "Bearer wrong"})).status_code == 401
    assert run(go({"authorization": "Bearer s3cret"})).status_code == 200


def test_concurrency_limit_is_a_429_that_names_the_setting(entry):
    async def go():
        async with client(ECOMGAN_MAX_CONCURRENCY="2") as c:
            return await asyncio.gather(
                *(c.post("/toy/echo", json={"n": -200}) for _ in range(6))
            )

    statuses = sorted(r.status_code for r in run(go()))
    assert statuses == [200, 200, 429, 429, 429, 429]


def test_timeout_is_a_504(entry):
    async def go():
        async with client(ECOMGAN_REQUEST_TIMEOUT_S="0.05") as c:
            return await c.post("/toy/echo", json={"n": -1000})

    r = run(go())
    assert r.status_code == 504 and "ECOMGAN_REQUEST_TIMEOUT_S" in r.json()["error"]
