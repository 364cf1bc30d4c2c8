"""Which coarse cells, and which parts of them, a feed's ``min_distance..max_distance`` takes in.

The feed walks the ``user_near`` index coarse cell by coarse cell (H3 resolution 5), ring by ring outwards
from the search origin's coarse cell (``h3.grid_ring``). Each cell of a ring is classified by the distance of
its centre from the origin's centre and its circumradius: surely all in range, surely none, or partly. A cell
that is partly in range is split into its children, down to resolution 8, where ``cells.distance_km`` itself
decides — so the walk takes in exactly the cells whose bucket is in range, and a filter is never finer than the
number the feed shows. A partly-in cell becomes a few ranges of resolution-8 ids (a cell's resolution-8
descendants are one contiguous run of ids), which the walk's SQL checks inside the index.

Each cell's verdict is cached per (origin, range): the same viewer's later walks reuse it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache

from h3.api import basic_int as h3

from services.location.cells import CELL_RES, allowed_span, centre, centre_km, coarse, distance_km

# Measured over 300 random resolution-5 cells: their resolution-8 descendants' centres lie within 1.006 times the
# cell's circumradius of its centre (H3 children do not tile their parent exactly). 1.25 leaves room.
MARGIN = 1.25
MAX_RING = 90  # resolution-5 rings are ~17 km apart: past 1,000 km, the largest max_distance
Range = tuple[int, int]
_CELLS_PER_STEP = 48


@dataclass(frozen=True)
class Part:
    """A coarse cell the walk reads, and which of its resolution-8 ids are in range (None: all of them)."""

    coarse: int
    ranges: tuple[Range, ...] | None


@lru_cache(maxsize=1 << 14)
def _reach(cell: int) -> float:
    """How far from the cell's centre its resolution-8 descendants' centres can be, in km (with the margin)."""
    middle = centre(cell)
    return MARGIN * max(h3.great_circle_distance(middle, vertex, unit="km") for vertex in h3.cell_to_boundary(cell))


def _descendants(cell: int) -> Range:
    last = h3.cell_to_children_size(cell, CELL_RES) - 1
    return h3.child_pos_to_cell(cell, CELL_RES, 0), h3.child_pos_to_cell(cell, CELL_RES, last)


def _in_range(origin: int, cell: int, min_km: int, max_km: int, span: tuple[float, float]) -> list[Range] | None:
    """The resolution-8 id ranges of ``cell`` in range; None means all of ``cell``."""
    if h3.get_resolution(cell) == CELL_RES:
        return None if min_km <= distance_km(origin, cell) <= max_km else []
    low, high = span
    middle, reach = centre_km(origin, cell), _reach(cell)
    if middle - reach > high or middle + reach <= low:
        return []
    if middle - reach > low and middle + reach <= high:
        return None
    ranges: list[Range] = []
    whole = True
    for child in h3.cell_to_children(cell, h3.get_resolution(cell) + 1):
        inside = _in_range(origin, child, min_km, max_km, span)
        if inside is None:
            ranges.append(_descendants(child))
        else:
            whole = False
            ranges.extend(inside)
    return None if whole else ranges


@lru_cache(maxsize=1024)
def _ring(home: int, k: int) -> tuple[int, ...]:
    """The cells ``k`` steps from ``home``, built from the two rings inside it: ``h3.grid_ring`` falls back to a
    slow path (50-140 ms a ring) once a ring meets a pentagon's distortion, about 45 rings out."""
    if k == 0:
        return (home,)
    previous = set(_ring(home, k - 1))
    inner = set(_ring(home, k - 2)) if k > 1 else set()
    ring: set[int] = set()
    for cell in previous:
        ring.update(h3.grid_disk(cell, 1))
    return tuple(sorted(ring - previous - inner))


@lru_cache(maxsize=1 << 15)
def _part(origin: int, min_km: int, max_km: int, cell: int) -> Part | None:
    inside = _in_range(origin, cell, min_km, max_km, allowed_span(min_km, max_km))  # type: ignore[arg-type]
    if inside is None:
        return Part(cell, None)
    return Part(cell, tuple(inside)) if inside else None


def part(origin: int, min_km: int, max_km: int, cell: int) -> Part | None:
    """The part of coarse ``cell`` in range, None if none of it is."""
    return _part(origin, min_km, max_km, cell)


async def ring_cells(origin: int, min_km: int, max_km: int, ring: int) -> list[int] | None:
    """The coarse cells of ring ``ring`` around ``origin``'s coarse cell that may hold someone in range (the rest
    are surely out); None once this ring and every one beyond it lie wholly past ``max_km`` (or nothing can be
    in range at all). A ring far out (hundreds of cells) yields to the loop every ``_CELLS_PER_STEP`` cells."""
    span = allowed_span(min_km, max_km)
    if span is None or ring > MAX_RING:
        return None
    low, high = span
    cells: list[int] = []
    beyond = ring > 0
    for index, cell in enumerate(_ring(coarse(origin), ring)):
        if index and not index % _CELLS_PER_STEP:
            await asyncio.sleep(0)
        middle, reach = centre_km(origin, cell), _reach(cell)
        if middle - 3 * reach <= high:  # the next ring's cells are within ~2 reaches of this ring's
            beyond = False
        if not (middle - reach > high or middle + reach <= low):
            cells.append(cell)
    return None if beyond else cells


async def ring_parts(origin: int, min_km: int, max_km: int, ring: int) -> list[Part] | None:
    """``ring_cells`` with each cell's part in range (for tests and tools; the walk asks only for the parts of
    cells someone is in)."""
    cells = await ring_cells(origin, min_km, max_km, ring)
    if cells is None:
        return None
    return [p for p in (part(origin, min_km, max_km, cell) for cell in cells) if p is not None]
