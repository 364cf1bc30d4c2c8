"""My position and my passport (``services.location``): only snapped cells are kept, never the coordinates."""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field

from handlers.base import BaseHandler, requires_permission
from handlers.contract import Payload, RequestModel, operation
from services.location import positions

# Finite WGS-84 degrees: NaN and Infinity are refused (1002), like out-of-range values, strings and booleans.
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class Coordinates(RequestModel):
    """WGS-84 degrees; the server keeps only the cell of about 1 km they fall in."""

    lat: Latitude
    lng: Longitude


class LocationUpdated(Payload):
    updated_at: dt.datetime


class LocationHandler(BaseHandler):
    @operation("setLocation", tag="location", summary="Set my position (kept only as a cell of about 1 km)",
               body=Coordinates, response=LocationUpdated)
    async def put(self, body: Coordinates) -> None:
        """Snap and store my position; at most SWIPER_LOCATION_CELLS_PER_HOUR new cells an hour (1006)."""
        updated = await positions.set_position(redis=self.redis, settings=self.settings_obj, user_id=self.user_id,
                                               lat=body.lat, lng=body.lng)
        self.ok({"updated_at": updated})

    @operation("forgetLocation", tag="location", summary="Forget my position (the feed goes back to my city)")
    async def delete(self) -> None:
        """Forget my position."""
        await positions.forget_position(redis=self.redis, user_id=self.user_id)
        self.ok(None)


class PassportHandler(BaseHandler):
    @operation("setPassport", tag="location", summary="Move my search origin (VIP anylocation)", body=Coordinates,
               errors=(403,))
    @requires_permission("anylocation")
    async def put(self, body: Coordinates) -> None:
        """My feed and the distances I see are measured from here until I end it or lose anylocation."""
        await positions.set_passport(redis=self.redis, settings=self.settings_obj, user_id=self.user_id,
                                     lat=body.lat, lng=body.lng)
        self.ok(None)

    @operation("endPassport", tag="location", summary="End my passport (search from my own position again)")
    async def delete(self) -> None:
        """End my passport; allowed without anylocation, so a lapsed member can still clear it."""
        await positions.end_passport(redis=self.redis, user_id=self.user_id)
        self.ok(None)


routes = [
    (r"/api/v1/location", LocationHandler),
    (r"/api/v1/passport", PassportHandler),
]
