"""The gateway process's garbage-collector policy, in one place: the runtime applies it once
start-up is done, and the benchmarks that time the gateway's work run under it too.

- What start-up made (modules, tables, the app, the compiled lender programs) lives as long as
  the process: :func:`gc.freeze` keeps it out of every later pass, which would otherwise walk
  it again and again under load.
- The young generation is collected after 10,000 new container objects instead of 700: ingest
  keeps a batch's decoded messages (thousands of objects) alive until its commit, and a single
  match builds a few thousand result objects that the response frees as a whole; with 700 the
  collector walked each of them several times (and promoted them to older generations that
  later passes walk again) for nothing it could free. Cycles are still collected, later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
OLDER_THRESHOLDS = (10, 10)


def settle_after_startup() -> None:
    """Freeze what exists now and set the generations' thresholds; call once start-up is done
    (calling again freezes what was made since)."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
