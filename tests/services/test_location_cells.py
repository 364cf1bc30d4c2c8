"""services/location: buckets, the allowed span, and that the feed's coverage takes in exactly the cells whose
bucket is in range (checked cell by cell against a brute force over the disk around the origin)."""
from __future__ import annotations

import pytest
from h3.api import basic_int as h3

from services.location import cells, coverage


@pytest.mark.parametrize("km, expected", [(0, 1), (0.99, 1), (1, 1), (1.0001, 2), (2, 2), (2.01, 5), (5, 5),
                                          (9.999, 10), (10.001, 25), (25, 25), (49.9, 50), (50.1, 100), (100, 100),
                                          (100.01, 200), (199.9, 200), (200.5, 300), (999.2, 1000), (1000.1, 1100)])
def test_buckets_round_up(km, expected):
    assert cells.bucket(km) == expected


def test_distance_is_a_function_of_the_pair_of_cells_only():
    a, b = cells.snap(39.9042, 116.4074), cells.snap(39.95, 116.52)
    assert cells.distance_km(a, a) == 1 and cells.distance_km(a, None) is None and cells.distance_km(None, b) is None
    assert cells.distance_km(a, b) == cells.distance_km(b, a) == 25
    # anywhere inside the same cells: the same answer
    for lat, lng in h3.cell_to_boundary(a)[:3]:
        inner = cells.snap(0.99 * lat + 0.01 * 39.9042, 0.99 * lng + 0.01 * 116.4074)
        assert inner == a and cells.distance_km(inner, b) == 25


@pytest.mark.parametrize("low, high, span", [(1, 10, (-1.0, 10.0)), (0, 1, (-1.0, 1.0)), (3, 25, (2.0, 25.0)),
                                             (3, 4, None), (0, 0, None), (1, 9, (-1.0, 5.0)), (150, 250, (100.0, 200.0)),
                                             (0, 1000, (-1.0, 1000.0))])
def test_allowed_span(low, high, span):
    assert cells.allowed_span(low, high) == span


@pytest.mark.parametrize("origin, low, high", [((39.9042, 116.4074), 1, 10), ((31.2304, 121.4737), 3, 25),
                                               ((-33.87, 151.21), 0, 2), ((64.13, -21.9), 6, 10)])
async def test_the_coverage_is_exactly_the_cells_in_range(origin, low, high):
    origin_cell = cells.snap(*origin)
    parts = {}
    ring = 0
    while (ring_parts := await coverage.ring_parts(origin_cell, low, high, ring)) is not None:
        parts.update({p.coarse: p for p in ring_parts})
        ring += 1

    def covered(cell: int) -> bool:
        part = parts.get(h3.cell_to_parent(cell, 5))
        return part is not None and (part.ranges is None or any(lo <= cell <= hi for lo, hi in part.ranges))

    disk = h3.grid_disk(origin_cell, int(high / 0.8) + 4)  # resolution-8 neighbours are ~0.8 km apart
    wrong = [c for c in disk if covered(c) != (low <= cells.distance_km(origin_cell, c) <= high)]
    assert not wrong and any(covered(c) for c in disk)
