"""Edge validation of the JSON APIs, on the real API declarations (no server)."""

from __future__ import annotations

import asyncio
import json

import pytest

from serving.edge import EdgeValidation, check_json, route_specs
from serving.errors import InvalidInput
from serving.products import ProductsAPI
from serving.shoppers import ShoppersAPI

SPECS = route_specs(
    {
        "g": ProductsAPI.products_generate,
        "png": ProductsAPI.products_generate_png,
        "score": ProductsAPI.products_score,
        "sg": ShoppersAPI.shoppers_generate,
        "ss": ShoppersAPI.shoppers_score,
    }
)


def refused(route: str, body: object) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(InvalidInput) as err:
        check_json(SPECS[route], raw)
    return err.value.message


def test_declared_fields_pass():
    check_json(SPECS["/products/generate"], b'{"category": "Bag", "count": 2, "seed": null}')
    check_json(SPECS["/shoppers/generate"], b"{}")  # every field is optional there


def test_context_parameter_is_not_a_field():
    assert SPECS["/products/generate_png"].fields == ["category", "count", "seed", "nrow"]
    assert SPECS["/products/score"].files == {"image"}


@pytest.mark.parametrize(
    ("route", "body", "expected"),
    [
        (
            "/products/generate",
            {"categroy": "Bag"},
            "unknown field 'categroy'; /products/generate accepts: category, count, seed, encoding",
        ),  # noqa: E501
        (
            "/shoppers/generate",
            {"count": 3, "condition": {"Revenue": True}},
            "unknown field 'condition'; /shoppers/generate accepts: count, seed, conditions, format",  # noqa: E501
        ),
        ("/products/generate", {"count": 2}, "missing required field 'category'"),
        (
            "/shoppers/score",
            {},
            "missing required field 'sessions'; /shoppers/score accepts: sessions",
        ),  # noqa: E501
        (
            "/products/generate",
            {"category": "Bag", "count": 2.5},
            "count must be an integer, got 2.5",
        ),  # noqa: E501
        (
            "/products/generate",
            {"category": "Bag", "seed": "x"},
            'seed must be an integer or null, got "x"',
        ),  # noqa: E501
        (
            "/products/generate",
            {"category": ["Bag"]},
            'category must be a string or an integer, got ["Bag"]',
        ),  # noqa: E501
        (
            "/shoppers/generate",
            {"format": "xml"},
            "format must be one of 'json' or 'csv', got \"xml\"",
        ),  # noqa: E501
        ("/shoppers/score", {"sessions": [1]}, "sessions[0] must be an object, got 1"),
        (
            "/products/generate",
            [1, 2],
            "must be a JSON object with the fields category, count, seed",
        ),  # noqa: E501
        ("/products/generate", b"{nope", "the request body is not valid JSON"),
        ("/products/generate", b"[" * 100_000, "nested too deeply"),
        (
            "/products/generate",
            {"category": "Bag", "count": True},
            "count must be an integer, got true",
        ),  # noqa: E501
        ("/shoppers/generate", {"count": "3"}, 'count must be an integer, got "3"'),
    ],
)
def test_refusals_name_the_field_and_what_is_allowed(route, body, expected):
    message = refused(route, body)
    assert expected in message
    assert "validation error" not in message and "pydantic" not in message


def _call(
    app, body: bytes, path: str, content_type: bytes = b"application/json", method: str = "POST"
):
    sent: list[dict] = []
    chunks = [body[:3], body[3:]]

    async def receive():
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-type", content_type)],
    }
    asyncio.run(app(scope, receive, send))
    return sent


def test_middleware_passes_the_whole_body_on_and_answers_refusals_itself():
    seen: list[bytes] = []

    async def downstream(scope, receive, send):
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = EdgeValidation(downstream, {"g": ProductsAPI.products_generate}, max_body_bytes=1000)
    good = b'{"category": "Bag", "count": 2}'
    assert _call(app, good, "/products/generate")[0]["status"] == 200
    assert seen == [good]

    sent = _call(app, b'{"category": "Bag", "cnt": 2}', "/products/generate")
    assert sent[0]["status"] == 400 and seen == [good]
    assert json.loads(sent[1]["body"]) == {
        "error": "unknown field 'cnt'; /products/generate accepts: category, count, seed, encoding"
    }
    assert _call(app, b"x" * 2000, "/products/generate")[0]["status"] == 413
    # Other routes (OIP, probes) are not this middleware's business.
    assert _call(app, b"{nope", "/v2/models/x/infer")[0]["status"] == 200


def test_plain_text_404_and_405_become_json_errors():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ok(request):
        return PlainTextResponse("fine")

    inner = Starlette(routes=[Route("/livez", ok, methods=["GET"])])
    app = EdgeValidation(inner, {"g": ProductsAPI.products_generate}, max_body_bytes=1000)
    sent = _call(app, b"", "/nowhere", method="GET")
    assert sent[0]["status"] == 404
    assert json.loads(sent[1]["body"]) == {
        "error": "no route GET /nowhere; the routes are listed at / and /docs"
    }
    assert _call(app, b"", "/livez", method="POST")[0]["status"] == 405
    sent = _call(app, b"", "/products/generate", method="GET")
    assert sent[0]["status"] == 405
    assert json.loads(sent[1]["body"])["error"] == (
        "GET is not allowed on /products/generate; use POST"
    )
    sent = _call(app, b"", "/livez", method="GET")
    assert (sent[0]["status"], sent[1]["body"]) == (200, b"fine")
