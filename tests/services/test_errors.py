"""Which failures are the 503 of a dependency (retry later) and which stay the 500 of a defect."""
from __future__ import annotations

import pytest
import redis

from services.errors import as_unavailable
from services.redis_client import CrossSlotError


@pytest.mark.parametrize("exc", [
    redis.exceptions.ConnectionError("refused"), redis.exceptions.TimeoutError("slow"),
    redis.exceptions.BusyLoadingError("loading"), redis.exceptions.ReadOnlyError("replica"),
    redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
    redis.exceptions.MasterDownError("MASTERDOWN Link with MASTER is down"),
    redis.exceptions.TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
    redis.exceptions.SlotNotCoveredError("slot 42 is not covered by the cluster"),
])
def test_a_redis_that_is_down_failing_over_or_missing_a_slot_is_unavailable(exc: Exception) -> None:
    error = as_unavailable(exc)
    assert error is not None and error.status == 503 and error.data == {"dependency": "redis"}


@pytest.mark.parametrize("exc", [
    CrossSlotError("DEL: keys in 2 hash slots"),  # our own keys are wrong: a defect, not an outage
    redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    ValueError("bad"),
])
def test_a_defect_is_not_passed_off_as_an_outage(exc: Exception) -> None:
    assert as_unavailable(exc) is None
