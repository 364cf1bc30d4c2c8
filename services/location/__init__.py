"""Position and distance: what the server knows about where people are, and the only ways to use it.

Owns:
- ``cells``: snapping a WGS-84 position to its H3 cell (resolution 8, about 0.74 km², 1 km across) — the only
  form in which a position is ever kept — and ``distance_km``, the bucketed distance between two cells' centres,
  the only distance anything outside this package ever sees;
- ``coverage``: which coarse cells (and which parts of them) a feed's ``min_distance..max_distance`` takes in,
  worked out exactly with ``distance_km`` itself, so a filter can never be finer than the number it shows;
- ``nearby``: the feed walk over the ``user_near`` index, ring by ring outwards from the search origin;
- ``positions``: ``PUT``/``DELETE`` of my position and of my passport (the search origin VIPs with
  ``anylocation`` may move), the hourly cell budget that stops a position walk from mapping someone's cell
  boundary, and ``search_origin``, the cell my feed and the distances I see are measured from.

Raw coordinates exist only inside ``cells.snap`` during one request: they are never stored (MySQL or Redis),
logged, compared, or returned.
"""
