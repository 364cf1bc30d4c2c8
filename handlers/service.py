"""Liveness, readiness and the OpenAPI document."""
from __future__ import annotations

from typing import Literal

from handlers.base import BaseHandler
from handlers.contract import Payload, operation
from handlers.openapi import build_spec
from services.errors import UnavailableError
from services.health import check_dependencies, replica_states


class Dependencies(Payload):
    mysql: Literal["ok", "down"]
    redis: Literal["ok", "down"]
    process: Literal["draining"] | None = None
    # read replicas by host:port (SWIPER_MYSQL_REPLICA_URLS), as of their last check; readiness does not depend
    # on them: a replica that is down or lagging is skipped and its reads go to the primary
    replicas: dict[str, Literal["ok", "lagging", "down"]] | None = None


class HealthHandler(BaseHandler):
    auth_required = False
    rate_limited = False

    @operation("getHealth", tag="service", summary="Liveness", response=Literal["ok"], dependencies=False)
    async def get(self) -> None:
        """200 while the process serves, whatever its dependencies do."""
        self.ok("ok")


class ReadyHandler(BaseHandler):
    auth_required = False
    rate_limited = False

    @operation("getReadiness", tag="service", summary="Readiness of MySQL and Redis", response=Dependencies)
    async def get(self) -> None:
        """200 only when MySQL and Redis both answer."""
        status: dict = await check_dependencies(redis=self.redis)
        if self.in_flight.draining:
            status["process"] = "draining"
        if set(status.values()) != {"ok"}:
            raise UnavailableError(data={**status, **replica_states()})
        self.ok({**status, **replica_states()})


class OpenApiHandler(BaseHandler):
    auth_required = False
    rate_limited = False

    @operation("getOpenApiDocument", tag="service", summary="This document", content="bare", dependencies=False)
    async def get(self) -> None:
        """The bare OpenAPI 3.1 document (no envelope), generated from the routes and their models."""
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(build_spec(self.application.settings["api_routes"]))


routes = [
    (r"/healthz", HealthHandler),
    (r"/readyz", ReadyHandler),
    (r"/api/v1/openapi.json", OpenApiHandler),
]
