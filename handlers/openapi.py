"""The OpenAPI 3.1 document, generated from the route table and each method's ``@operation`` declaration.

Nothing here restates a shape: request bodies, query parameters and payloads are the pydantic models the
handlers parse with and answer from (JSON Schema 2020-12, which OpenAPI 3.1 uses as it is; a nullable value is
``anyOf: [..., {"type": "null"}]``, so generated clients accept the nulls the server sends). Path parameters come
from the route regexes. A test checks that every route and method is documented, and the suite validates every
answer it receives against this document.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema
from tornado import web

from handlers.contract import Operation
from handlers.shapes import Error
from services import jsoncodec

REF = "#/components/schemas/{model}"
METHODS = ("get", "post", "put", "patch", "delete")
ERROR_DESCRIPTIONS = {400: "invalid input", 401: "not authenticated", 403: "permission denied or banned",
                      404: "not found", 405: "method not allowed", 409: "conflict", 413: "payload too large",
                      429: "rate limited or quota used up", 502: "upstream failed", 503: "unavailable"}
_ID_GROUP = "[1-9][0-9]{0,17}"


def openapi_path(pattern: str, handler: type[web.RequestHandler]) -> str:
    """Turn a route regex into an OpenAPI path, naming groups after the handler method's arguments."""
    return _path_with_names(pattern, handler)[0]


def _path_with_names(pattern: str, handler: type[web.RequestHandler]) -> tuple[str, list[tuple[str, str]]]:
    methods = [getattr(handler, m) for m in METHODS if m in vars(handler)]
    names = [p for p in inspect.signature(methods[0]).parameters if p not in ("self", "body", "query")] \
        if methods else []
    groups: list[tuple[str, str]] = []
    parts = iter(names)

    def name_group(match: re.Match) -> str:
        name = next(parts)
        groups.append((name, match.group(1)))
        return "{" + name + "}"
    return re.sub(r"\(([^)]*)\)", name_group, pattern).rstrip("$"), groups


def _path_parameter(name: str, regex: str) -> dict[str, Any]:
    if regex == _ID_GROUP:
        schema: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}
    else:
        schema = {"type": "string", "pattern": f"^{regex}$"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _operations(routes: Sequence[tuple]) -> list[tuple[str, str, type[web.RequestHandler], Operation, list]]:
    found = []
    for pattern, handler, *_ in routes:
        path, groups = _path_with_names(pattern, handler)
        for method in METHODS:
            function = vars(handler).get(method)
            spec = getattr(function, "operation", None)
            if spec is not None:
                found.append((path, method, handler, spec, groups))
    return found


def _schema_of(value: Any, refs: dict[Any, dict]) -> dict[str, Any]:
    if value is None:
        return {"type": "null"}
    if isinstance(value, type) and issubclass(value, BaseModel):
        return refs[(value, "serialization")]
    return TypeAdapter(value).json_schema(ref_template=REF)


def _tidy(node: Any) -> Any:
    """Drop pydantic's titles and the ``default: null`` of optional PATCH fields (omitted is not null there)."""
    if isinstance(node, dict):
        return {key: _tidy(value) for key, value in node.items()
                if not (key == "title" and isinstance(value, str)) and not (key == "default" and value is None)}
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    return node


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["code", "data"], "additionalProperties": False,
            "properties": {"code": {"const": 0}, "data": data}}


def build_document(routes: Sequence[tuple]) -> dict[str, Any]:
    operations = _operations(routes)
    models: list[tuple[type[BaseModel], str]] = [(Error, "serialization")]
    for *_, spec, _groups in operations:
        if isinstance(spec.response, type) and issubclass(spec.response, BaseModel):
            models.append((spec.response, "serialization"))
        for model in (spec.body, spec.form):  # query models become parameters, not components
            if model is not None:
                models.append((model, "validation"))
        models += [(schema, "serialization") for _media, schema in spec.replies.values()
                   if isinstance(schema, type) and issubclass(schema, BaseModel)]
    refs, definitions = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, handler, spec, groups in operations:
        auth = handler.auth_required if spec.auth is None else spec.auth
        rate_limited = handler.rate_limited or handler.rate_limit_scope is not None
        statuses = set(spec.errors) | {405}
        statuses |= {401, 403} if auth else set()  # 403: a banned account's 1013, on any signed-in request
        statuses |= {400, 413} if (spec.body or spec.form) else set()
        statuses |= {400} if spec.query else set()
        statuses |= {404} if groups else set()  # an id the route's pattern does not take matches no route
        statuses |= {429} if rate_limited and spec.dependencies else set()
        statuses |= {503} if spec.dependencies else set()
        if spec.content == "custom":
            responses: dict[str, Any] = {str(status): _custom_reply(status, media, schema, refs)
                                         for status, (media, schema) in sorted(spec.replies.items())}
        else:
            if spec.content == "text":
                ok: dict[str, Any] = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
            elif spec.content == "bare":
                ok = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
            else:
                ok = {"description": "OK", "content": {"application/json": {
                    "schema": _envelope(_schema_of(spec.response, refs))}}}
            if spec.links:
                ok["links"] = spec.links
            responses = {"200": ok}
        for status in sorted(statuses):  # the envelope's errors, where a custom operation declares no other form
            responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status], "content": {
                "application/json": {"schema": refs[(Error, "serialization")]}}})
        responses = dict(sorted(responses.items()))
        item: dict[str, Any] = {"operationId": spec.id, "tags": [spec.tag], "summary": spec.summary,
                                "responses": responses, "security": [{"bearer": []}] if auth else []}
        parameters = [_path_parameter(name, regex) for name, regex in groups]
        if spec.headers is not None:
            header_schema = spec.headers.model_json_schema(ref_template=REF)
            required = set(header_schema.get("required", ()))
            parameters += [{"name": name, "in": "header", "required": name in required, "schema": schema}
                           for name, schema in header_schema["properties"].items()]
        if spec.query is not None:
            query_schema = spec.query.model_json_schema(ref_template=REF)
            required = set(query_schema.get("required", ()))
            parameters += [{"name": name, "in": "query", "required": name in required, "schema": schema}
                           for name, schema in query_schema["properties"].items()]
        if parameters:
            item["parameters"] = parameters
        if spec.body is not None:
            item["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": refs[(spec.body, "validation")]}}}
        if spec.form is not None:
            item["requestBody"] = {"required": True, "content": {spec.form_media: {
                "schema": refs[(spec.form, "validation")]}}}
        if spec.extra:
            item.update(spec.extra)
        paths.setdefault(path, {})[method] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "Swiper API", "version": "1.0.0",
                 "description": "Envelope: success {code: 0, data}; failure {code, error, message, data}. "
                                "The contract in words is shared/API.md."},
        "tags": [{"name": tag} for tag in dict.fromkeys(spec.tag for *_, spec, _ in operations)],
        "paths": _tidy(paths),
        "components": {"schemas": _tidy(definitions.get("$defs", {})),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


def _custom_reply(status: int, media: str | None, schema: Any, refs: dict[Any, dict]) -> dict[str, Any]:
    description = {101: "Switching Protocols"}.get(status, "OK") if status < 300 else ERROR_DESCRIPTIONS.get(status, "error")
    if media is None:
        return {"description": description}
    return {"description": description, "content": {media: {"schema": _schema_of(schema, refs)}}}


_rendered: dict[int, bytes] = {}


def build_spec(routes: Sequence[tuple]) -> bytes:
    """The document as JSON, built once per route table (it never changes while the process runs)."""
    key = id(routes)
    if key not in _rendered:
        _rendered[key] = jsoncodec.dumps(build_document(routes))
    return _rendered[key]
