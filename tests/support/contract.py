"""Every answer the suite receives, checked against the OpenAPI document the server generates from its models.

So the declared response models are proven against real answers in every test that gets one (issue 11), not
only in the fuzzer: a field the server returns without declaring it, a null where the model says no null, or
a status the operation does not document fails the test that saw it.
"""
from __future__ import annotations

import json
import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs

from handlers.openapi import build_spec


class ContractViolation(AssertionError):
    pass


@cache
def _document() -> dict[str, Any]:
    from server import ROUTES
    return json.loads(build_spec(ROUTES))


@cache
def _operations() -> list[tuple[re.Pattern, str, dict[str, Any]]]:
    found = []
    for path, methods in _document()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", path) + "$")
        for method, operation in methods.items():
            found.append((pattern, method.upper(), operation))
    return found


@cache
def _validator(operation_id: str, status: str) -> Any:
    operation = next(op for _, _, op in _operations() if op["operationId"] == operation_id)
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({"components": _document()["components"], **schema})


def check_answer(method: str, url: str, status: int, content_type: str, body: Any) -> None:
    """Raise ``ContractViolation`` when a documented operation answered outside its documented contract."""
    path = urlsplit(url).path
    matches = [op for pattern, op_method, op in _operations() if op_method == method and pattern.match(path)]
    if not matches:
        return  # an undocumented path or method: the 404/405 tests cover those
    operation = matches[0]
    if status == 500:  # never intended, so not documented; its tests check the envelope themselves
        return
    if str(status) not in operation["responses"]:
        raise ContractViolation(f"{method} {path}: status {status} is not documented for {operation['operationId']}")
    content = operation["responses"][str(status)].get("content", {})
    if "application/json" not in content:
        return
    if "json" not in content_type or body is None:
        raise ContractViolation(f"{method} {path} {status}: expected a JSON body, got {content_type!r}")
    try:
        _validator(operation["operationId"], str(status)).validate(body)
    except jsonschema_rs.ValidationError as exc:
        where = "/".join(str(part) for part in exc.instance_path)
        raise ContractViolation(f"{method} {path} {status} ({operation['operationId']}): at /{where}: "
                                f"{exc.message}; body: {json.dumps(body, ensure_ascii=False)[:500]}") from None
