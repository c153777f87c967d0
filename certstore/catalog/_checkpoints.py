"""How a run's checkpoint is written, for every catalog backend (SQL, a Django model).

Why not a plain upsert: ``catalog import --update-changed`` and ``validate --repair`` make rows
pending again and move checkpoints back before them. A run writing its in-memory position over
that would skip those rows on ``--resume``. So the write is a compare-and-set, and:

- a checkpoint found *below* what the run expects was moved back by such a change: it stays;
- one found *above* (another run with the same filters) is overwritten, which only moves it
  back to a position this run has proven;
- the position written is capped before the first row of the run's filters that is pending in
  ``(checked_from, last_id]`` (cleared meanwhile, or a mark that did not apply because the row
  changed). That range is only what the run proved since its last write, so the check costs
  what the run's progress does, and it runs after the write, under its lock, so a change
  committed before it is seen and one committed after it moves the checkpoint back itself.

The backends supply the five storage steps; the decisions are made here, once.
"""

from __future__ import annotations

from collections.abc import Callable

#: Rounds of read-compare-write before giving up on a checkpoint other processes keep moving.
ATTEMPTS = 3


def write_checkpoint(
    last_id: int,
    *,
    expected: int | None,
    checked_from: int | None,
    read: Callable[[], int | None],
    insert: Callable[[], bool],
    replace: Callable[[int], bool],
    first_pending: Callable[[int, int], int | None],
    cap: Callable[[int], None],
) -> int:
    """Move the run's checkpoint from ``expected`` (None: no row yet) to ``last_id``, never
    past a pending row; returns the position stored afterwards.

    ``read()`` the stored position (None: no row); ``insert()`` the row unless it exists (True
    when this call inserted it); ``replace(current)`` the row's values if it still holds
    ``current`` (True when it did); ``first_pending(after, through)`` the lowest pending id of
    the run's filters in ``(after, through]``; ``cap(position)`` store a lower position.
    """
    written: int | None = None
    for _attempt in range(ATTEMPTS):
        current = read()
        if current is None:
            if insert():
                written = last_id
                break
            continue  # another process inserted it first: compare again
        if expected is not None and current < expected:
            return current  # moved back meanwhile: a row of this run is pending again
        if replace(current):
            written = last_id
            break
    if written is None:
        stored = read()
        return stored if stored is not None else last_id
    if checked_from is None or checked_from >= written:
        return written
    pending = first_pending(checked_from, written)
    if pending is None:
        return written
    capped = max(pending - 1, checked_from)
    cap(capped)
    return capped
