"""Edge validation of the JSON APIs: malformed requests are refused here, in our words.

BentoML validates an API's input with pydantic after reading it, answers a failure with
pydantic's wording ("1 validation error for Input") and logs it at ERROR with a traceback, and
it ignores fields that the API does not declare. This ASGI middleware checks each request to a
family API against that API's own input model first: the body must be a JSON object (or a
multipart form for upload APIs), every field must be declared, required fields present and
each value of the declared type. A refusal is a 400 ``{"error": ...}`` that names the field and
what is allowed, logged at INFO in one line. Accepted requests reach BentoML unchanged.
"""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from serving.errors import (
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServerFault,
    ServingError,
    UnsupportedMediaType,
    send_error,
)

logger = logging.getLogger("ecomgan.refused")

_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "string": "a string",
    "bool": "true or false",
    "list": "a list",
    "dict": "an object",
    "none": "null",
    "finite": "a finite number",
}


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}  # fmt: skip


@dataclass(frozen=True)
class RouteSpec:
    """What one JSON API accepts: its input model and whether it takes a multipart upload."""

    route: str
    model: type[BaseModel]
    files: frozenset[str]
    # The input model with unknown fields forbidden and strict types: one pass of pydantic's
    # JSON parser accepts a valid body (the common case) without building Python objects.
    strict: type[BaseModel]

    @property
    def fields(self) -> list[str]:
        return list(self.model.model_fields)

    @property
    def required(self) -> list[str]:
        return [n for n, f in self.model.model_fields.items() if f.is_required()]


def route_specs(apis: Mapping[str, Any]) -> dict[str, RouteSpec]:
    """Route -> spec of every API of a BentoML service (``Service.apis``)."""
    specs = {}
    for method in apis.values():
        model = method.input_spec
        files = frozenset(
            name for name, field in model.model_fields.items() if _mentions(field.annotation, Path)
        )
        strict = type(
            f"{model.__name__}Strict",
            (model,),
            {"__module__": __name__, "model_config": {**model.model_config, "extra": "forbid",
                                                       "strict": True}},
        )  # fmt: skip
        specs[method.route] = RouteSpec(method.route, model, files, strict)
    return specs


def _mentions(annotation: Any, cls: type) -> bool:
    if annotation is cls:
        return True
    return any(_mentions(a, cls) for a in typing.get_args(annotation))


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(errors: list[dict]) -> str:
    """'an integer', 'a string or an integer', "one of 'json', 'csv'" from pydantic errors."""
    words: list[str] = []
    for err in errors:
        kind = err["type"]
        if kind == "literal_error":
            words.append("one of " + err.get("ctx", {}).get("expected", "the listed values"))
        elif kind == "int_from_float":
            words.append("an integer")
        else:
            base = kind.split("_", 1)[0]
            words.append(_TYPE_WORDS.get(base, err["msg"].lower()))
    unique = list(dict.fromkeys(words))
    return " or ".join(unique)


def _where(loc: tuple) -> str:
    text = str(loc[0])
    for part in loc[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def describe_validation_error(
    exc: ValidationError, data: Mapping[str, Any], model: type[BaseModel] | None = None
) -> str:
    """One sentence for the first field pydantic refused: where, what is allowed, what came."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    # A union reports one error per member with the member's name appended to the location.
    loc = tuple(first["loc"])
    members = [e for e in errors if tuple(e["loc"][: len(loc) - 1]) == loc[:-1]]
    if len(members) > 1 and all(len(e["loc"]) == len(loc) for e in members):
        loc = loc[:-1]
    else:
        members = [first]
    value: Any = data
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = None
            break
    expected = _expected(members)
    field = model.model_fields.get(str(loc[0])) if model is not None and len(loc) == 1 else None
    if field is not None and _mentions(field.annotation, type(None)) and "null" not in expected:
        expected += " or null"  # pydantic reports only the non-null member of an Optional
    return f"{_where(loc)} must be {expected}, got {_show(value)}"


def check_fields(spec: RouteSpec, present: list[str]) -> None:
    """Raise InvalidInput for an unknown or a missing field, naming the allowed ones."""
    allowed = ", ".join(spec.fields)
    unknown = [k for k in present if k not in spec.model.model_fields]
    if unknown:
        raise InvalidInput(
            f"unknown field{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; {spec.route} accepts: {allowed}"
        )
    missing = [k for k in spec.required if k not in present]
    if missing:
        raise InvalidInput(
            f"missing required field{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(k) for k in missing)}; {spec.route} accepts: {allowed}"
        )


def check_json(spec: RouteSpec, body: bytes) -> None:
    """Validate a JSON API request body against its route's input model.

    A valid body costs one pass of pydantic's JSON parser; only a refused one is parsed again,
    to say in our words which field is wrong and what is allowed.
    """
    try:
        spec.strict.model_validate_json(body if body.strip() else b"{}")
        return
    except ValidationError:
        pass
    try:
        data = json.loads(body) if body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the request body is not valid JSON ({exc})") from None
    except RecursionError:  # json's recursive parser on thousands of nested brackets
        raise InvalidInput("the request body is nested too deeply to be a request") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"the request body must be a JSON object with the fields {', '.join(spec.fields)}; "
            f"got {_JSON_KINDS.get(type(data), type(data).__name__)}"
        )
    check_fields(spec, list(data))
    try:
        # Strict: JSON true is not the integer 1, nor "3" the number 3 (lax pydantic says so).
        spec.model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc, data, spec.model)) from None
    raise InvalidInput(f"the request body is not a valid {spec.route} request")  # not expected


def check_form(spec: RouteSpec, form: Any) -> None:
    """Validate a multipart upload: declared fields only, files where files belong."""
    from starlette.datastructures import UploadFile

    check_fields(spec, list(form.keys()))
    for name in spec.fields:
        if name not in form:
            continue
        is_file = isinstance(form[name], UploadFile)
        if name in spec.files and not is_file:
            raise InvalidInput(f"{name} must be a file upload (a multipart part with a filename)")
        if name not in spec.files and is_file:
            raise InvalidInput(f"{name} must be a plain form value, not a file")


class EdgeValidation:
    """ASGI middleware that validates requests to the JSON APIs before BentoML sees them.

    Args:
        app: The downstream ASGI app.
        apis: The entry service's ``apis`` (route, input model per API).
        max_body_bytes: Largest body read; larger ones get a 413.
    """

    def __init__(self, app, apis: Mapping[str, Any], max_body_bytes: int) -> None:
        self.app = app
        self.specs = route_specs(apis)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        spec = self.specs.get(scope.get("path", "")) if scope["type"] == "http" else None
        if spec is None:
            await self.app(scope, receive, _json_errors(scope, send))
            return
        if scope.get("method") != "POST":
            method = scope.get("method")
            await send_error(
                send, MethodNotAllowed(f"{method} is not allowed on {spec.route}; use POST")
            )
            return
        try:
            body = await self._read(scope, receive)
            await self._check(spec, scope, body)
        except ServingError as exc:
            logger.info("refused POST %s (%d): %s", spec.route, int(exc.http_status), exc.message)
            await send_error(send, exc)
            return
        except Exception:  # a bug of ours: answer 500 rather than leave the client hanging
            logger.exception("edge validation failed on POST %s", spec.route)
            await send_error(send, ServerFault("internal error; see the server log"))
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, scope, receive) -> bytes:
        return await read_body(receive, self.max_body_bytes)

    async def _check(self, spec: RouteSpec, scope, body: bytes) -> None:
        headers = dict(scope.get("headers") or [])
        media = headers.get(b"content-type", b"application/json").decode("latin-1")
        media = media.split(";")[0].strip().lower()
        if spec.files:
            # A form without a file part arrives urlencoded: parse it to say what is missing.
            if media not in ("multipart/form-data", "application/x-www-form-urlencoded"):
                raise UnsupportedMediaType(
                    f"{spec.route} takes a multipart/form-data upload with the fields "
                    f"{', '.join(spec.fields)}; got Content-Type {media!r}"
                )
            from starlette.requests import Request

            try:
                form = await Request(scope, _replay(body)).form()
            except Exception as exc:  # starlette raises several types for broken multipart
                raise InvalidInput(f"the multipart body cannot be parsed ({exc})") from None
            try:
                check_form(spec, form)
            finally:
                await form.close()
            return
        if media not in ("application/json", "text/plain", ""):
            raise UnsupportedMediaType(
                f"{spec.route} takes a JSON object (Content-Type: application/json); "
                f"got Content-Type {media!r}"
            )
        check_json(spec, body)


async def read_body(receive, limit: int, declared: bytes | None = None) -> bytes:
    """An ASGI request's whole body, refused with 413 above `limit` bytes (at once when the
    Content-Length header, `declared`, says so) and 400 if the client leaves mid-body."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {int(declared)} bytes; the limit is {limit} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidInput("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _json_errors(scope, send):
    """Wrap `send` so that Starlette's plain-text 404 and 405 become ``{"error": ...}``."""
    state: dict = {}

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start" and message["status"] in (404, 405):
            headers = dict(message.get("headers") or [])
            if headers.get(b"content-type", b"").startswith(b"text/plain"):
                state["start"] = message
                return
        if message["type"] == "http.response.body" and "start" in state:
            status = state.pop("start")["status"]
            what = f"{scope.get('method')} {scope.get('path')}"
            exc = (
                NotFound(f"no route {what}; the routes are listed at / and /docs")
                if status == 404
                else MethodNotAllowed(f"{what}: method not allowed")
            )
            await send_error(send, exc)
            return
        await send(message)

    return wrapped


def _replay(body: bytes, then=None):
    """An ASGI `receive` that yields the already-read body, then defers to `then` (which
    reports the client's real disconnect) or, without it, reports a disconnect."""
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
