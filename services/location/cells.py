"""Cells and the one distance anybody sees.

**Why H3 at resolution 8** (``h3`` 4.x, Uber's maintained C library with Cython bindings): a resolution-8 cell
is a hexagon of about 0.74 km² (0.53 km edge, about 1 km across), the size API.md asks for. Hexagons have one
kind of neighbour, all at the same centre distance, so the rings around a cell grow evenly with distance: the
feed walks them outwards as distance bands (``coverage``), which squares (geohash, S2) would distort along the
diagonals, and geohash cells also change shape with latitude. H3's ids are hierarchical: truncating the digits
gives the parent (resolution 5, about 250 km², the feed index's coarse cell), and the resolution-8 descendants of
any cell are one contiguous range of integer ids, so "these parts of a coarse cell" is a few ``BETWEEN`` ranges.
Cost, measured on this machine: ``latlng_to_cell`` 0.5 µs, ``cell_to_latlng`` plus ``great_circle_distance``
1.5 µs (``s2sphere``, pure Python, takes 8.3 µs for a level-13 cell; ``pygeohash`` 0.4 µs for precision 6, but a
geohash-6 cell is 1.2 × 0.6 km at the equator and narrows with latitude, and has no neighbour rings).

**Distances are computed only between cell centres** and only ever leave as a bucket (``distance_km``): 1, 2,
5, 10, 25, 50, 100, then whole hundreds, rounded up, the same cell being 1. The pair is put in a fixed order
before computing, so the answer is bit-for-bit the same in both directions and on every call.
"""
from __future__ import annotations

import math
from functools import lru_cache

from h3.api import basic_int as h3

CELL_RES = 8
COARSE_RES = 5
BUCKETS = (1, 2, 5, 10, 25, 50, 100)  # then whole hundreds


def snap(lat: float, lng: float) -> int:
    """The cell of a WGS-84 position (already checked to be finite and in range); the raw values go no further."""
    return h3.latlng_to_cell(lat, lng, CELL_RES)


def coarse(cell: int) -> int:
    """The feed index's coarse cell of a cell."""
    return h3.cell_to_parent(cell, COARSE_RES)


@lru_cache(maxsize=1 << 16)
def centre(cell: int) -> tuple[float, float]:
    return h3.cell_to_latlng(cell)


def centre_km(a: int, b: int) -> float:
    """The great-circle distance between two cells' centres, in a fixed order of the pair (for ``coverage``)."""
    low, high = (a, b) if a < b else (b, a)
    return h3.great_circle_distance(centre(low), centre(high), unit="km")


def bucket(km: float) -> int:
    """A distance rounded up to the next bucket."""
    for edge in BUCKETS:
        if km <= edge:
            return edge
    return math.ceil(km / 100) * 100


def distance_km(a: int | None, b: int | None) -> int | None:
    """The distance two people see between them: None unless both have a cell; the same cell is 1."""
    if a is None or b is None:
        return None
    if a == b:
        return 1
    return bucket(centre_km(a, b))


def _bucket_values():
    yield from BUCKETS
    hundreds = 2
    while True:
        yield hundreds * 100
        hundreds += 1


def allowed_span(min_km: int, max_km: int) -> tuple[float, float] | None:
    """The centre distances ``d`` whose bucket lies in ``min_km..max_km``: ``low < d <= high``, or None if no
    bucket does. Only for deciding which cells are surely in or out; cells near an edge are decided with
    ``distance_km`` itself."""
    low, high = -1.0, None
    for value in _bucket_values():
        if value < min_km:
            low = float(value)
        if value <= max_km:
            high = float(value)
        if value > max(min_km, max_km):
            break
    if high is None or high <= low:
        return None
    return low, high
