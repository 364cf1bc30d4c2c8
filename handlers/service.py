"""Liveness, readiness and the OpenAPI document."""
from __future__ import annotations

from handlers.base import BaseHandler
from handlers.openapi import build_spec
from services import jsoncodec
from services.errors import UnavailableError
from services.health import check_dependencies


class HealthHandler(BaseHandler):
    auth_required = False
    rate_limited = False

    async def get(self) -> None:
        """200 while the process serves, whatever its dependencies do."""
        self.ok("ok")


class ReadyHandler(BaseHandler):
    auth_required = False
    rate_limited = False

    async def get(self) -> None:
        """200 only when MySQL and Redis both answer."""
        status = await check_dependencies(redis=self.redis)
        if self.in_flight.draining:
            status["process"] = "draining"
        if set(status.values()) != {"ok"}:
            raise UnavailableError(data=status)
        self.ok(status)


class OpenApiHandler(BaseHandler):
    auth_required = False
    rate_limited = False

    async def get(self) -> None:
        """The bare OpenAPI 3 document (no envelope)."""
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(jsoncodec.dumps(build_spec(self.application)))


routes = [
    (r"/healthz", HealthHandler),
    (r"/readyz", ReadyHandler),
    (r"/api/v1/openapi.json", OpenApiHandler),
]
