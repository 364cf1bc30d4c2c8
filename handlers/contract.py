"""What the API declares: the base of every request and payload model, the shared field types, and the
``@operation`` decorator that ties a handler method to its models.

A body or query is parsed into its model before the method runs (the method gets it as ``body=`` / ``query=``);
validation and the OpenAPI document (``handlers.openapi``) both come from the same declaration, so they cannot
drift. Rules that need the stored state or another field (``min <= max``, permissions, ages relative to today)
stay in the services.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError, WithJsonSchema

from services.errors import InvalidParamsError

MAX_ID = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What a trimmed short text looks like (the server trims; the document shows the trimmed form)
_SHORT_TEXT_PATTERN = r"^[^\x00-\x1f\x7f\s](?:[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s])?$"


class RequestModel(BaseModel):
    """A JSON body: strict types (``42`` is no string, ``true`` no integer) and no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)
    read_only: ClassVar[frozenset[str]] = frozenset()  # fields of the resource a client may not send: named so

    def sent(self) -> dict[str, Any]:
        """Only the fields the client sent (a PATCH changes nothing it did not name)."""
        return self.model_dump(exclude_unset=True)


class QueryModel(BaseModel):
    """Query parameters: every value arrives as text, so numbers are parsed from it; unknown names are refused."""

    model_config = ConfigDict(extra="forbid")


class Payload(BaseModel):
    """A response payload: closed, so a field the server adds without declaring it fails the contract tests."""

    model_config = ConfigDict(extra="forbid")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32),
                      AfterValidator(_no_control_characters),
                      WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 32,
                                      "pattern": _SHORT_TEXT_PATTERN})]
def _integral(value: Any) -> Any:
    """JSON has one number type: 20.0 is the integer 20 (JSON Schema agrees), 20.5 is not; true stays no integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def integer(minimum: int, maximum: int) -> Any:
    """An integer a client sends, within bounds (plain ``int`` would refuse 20.0). The bounds come before the
    conversion so the schema shows them as ``minimum``/``maximum``."""
    return Annotated[int, Field(ge=minimum, le=maximum), BeforeValidator(_integral)]


Gender = Literal["male", "female"]
UserId = integer(1, MAX_ID)
Limit = Annotated[int, Field(ge=1, le=50)]


# -- errors ----------------------------------------------------------------------------------------------------
_MESSAGES = {
    "missing": "required", "extra_forbidden": "unknown field", "string_type": "must be a string",
    "int_type": "must be an integer", "int_parsing": "must be an integer", "int_from_float": "must be an integer",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false", "float_type": "must be a number",
    "float_parsing": "must be a number", "list_type": "must be a list", "model_type": "must be an object",
    "model_attributes_type": "must be an object", "dict_type": "must be an object",
    "date_type": "must be a date YYYY-MM-DD", "date_parsing": "must be a real date YYYY-MM-DD",
    "date_from_datetime_parsing": "must be a real date YYYY-MM-DD", "finite_number": "must be a finite number",
}


def _message(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "literal_error":
        return "must be one of " + str(ctx.get("expected", "")).replace("'", "")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        words = {"greater_than_equal": "at least", "less_than_equal": "at most", "greater_than": "more than",
                 "less_than": "less than"}
        bound = next(iter(ctx.values()), "")
        return f"must be {words[kind]} {bound}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} items"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    message = str(error.get("msg", "is not valid"))
    return message.removeprefix("Value error, ").replace("Input should be", "must be")


def invalid_params(exc: ValidationError, read_only: frozenset[str] = frozenset()) -> InvalidParamsError:
    """Every problem, by dotted path (``preferences.min_dating_age``), with a short message: 1002."""
    problems: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if not loc:  # the body as a whole
            if error["type"] == "json_invalid":
                return InvalidParamsError("The body is not valid JSON.")
            return InvalidParamsError("The body must be a JSON object.")
        path = ".".join(str(part) for part in loc)
        if error["type"] == "extra_forbidden" and len(loc) == 1 and loc[0] in read_only:
            problems.setdefault(path, "read-only field")
        else:
            problems.setdefault(path, _message(error))
    return InvalidParamsError.for_fields(problems)


def parse_json(model: type[RequestModel], raw: bytes) -> RequestModel:
    if not raw.strip():
        raise InvalidParamsError("A JSON object body is required.")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid_params(exc, model.read_only) from None


def parse_query(model: type[QueryModel], arguments: dict[str, list[bytes]]) -> QueryModel:
    problems = {name: "must be given once" for name, values in arguments.items() if len(values) > 1}
    if problems:
        raise InvalidParamsError.for_fields(problems)
    try:
        values = {name: values[0].decode("utf-8") for name, values in arguments.items()}
    except UnicodeDecodeError:
        raise InvalidParamsError("The query string is not UTF-8.") from None
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise invalid_params(exc) from None


# -- operations ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    """One method of one route, as the OpenAPI document describes it."""

    id: str
    tag: str
    summary: str
    response: Any = None            # a Payload model (or list/union of them); None: ``data`` is null
    body: type[RequestModel] | None = None
    query: type[QueryModel] | None = None
    form: type[BaseModel] | None = None  # a multipart/form-data body the handler reads itself (uploads)
    form_media: str = "multipart/form-data"  # or application/x-www-form-urlencoded (Alipay's notifications)
    headers: type[BaseModel] | None = None  # request headers the operation reads (by alias), as parameters
    # content="custom": every status it answers and how, in the provider's format: status -> (media type or
    # None for no body, a model or type for its schema)
    replies: dict[int, tuple[str | None, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()    # statuses besides the ones every operation of its kind has
    auth: bool | None = None        # None: the handler class's auth_required
    content: Literal["envelope", "bare", "text", "custom"] = "envelope"
    dependencies: bool = True       # needs MySQL or Redis: a 503 is documented
    links: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"operationId", "parameters"...}
    extra: dict[str, Any] = field(default_factory=dict)  # merged into the operation (e.g. a multipart body)


def operation(op_id: str, *, tag: str, summary: str, **details: Any) -> Callable:
    """Declare a handler method's operation; with ``body=``/``query=`` the method receives them parsed."""
    spec = Operation(id=op_id, tag=tag, summary=summary, **details)

    def decorate(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        if spec.body is None and spec.query is None:
            method.operation = spec  # type: ignore[attr-defined]
            return method

        @functools.wraps(method)
        async def parsed(self: Any, *args: Any) -> None:
            kwargs: dict[str, Any] = {}
            if spec.query is not None:
                kwargs["query"] = self.parse_query(spec.query)
            if spec.body is not None:
                kwargs["body"] = self.parse_body(spec.body)
            await method(self, *args, **kwargs)

        parsed.operation = spec  # type: ignore[attr-defined]
        return parsed
    return decorate
