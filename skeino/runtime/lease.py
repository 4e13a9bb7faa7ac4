"""A replica's hold on one run it executes for the shared queue (see replicas.py)."""

from __future__ import annotations

import time

# Of a lease's length, how long after a renewal was sent this replica trusts it without
# asking the database again (the rest is margin for clocks and a slow renewal).
_TRUSTED = 0.8


class Lease:
    """The lease epoch fencing a run's writes, and what this replica knows of the lease now.

    The database is the judge: every write of the run's outcome names `epoch` and is refused
    once another replica took the run over. What the replica believes locally only decides
    when to stop early and whether to send live events to the others meanwhile.
    """

    def __init__(self, run_id: str, epoch: int, seconds: float, claimed_at: float) -> None:
        """`claimed_at`: the monotonic time the claim was sent (the lease runs from the database's "now")."""
        self.run_id = run_id
        self.epoch = epoch
        self._seconds = seconds
        self._trusted_until = claimed_at + seconds * _TRUSTED
        self.lost = False  # the database said another replica holds the run now
        self.settled = False  # the run's end is recorded: nothing left to fence
        # None until the run starts, True while the graph executes (stopping the run is safe
        # then), False once it has stopped and the run records its end.
        self.in_graph: bool | None = None

    def renewed(self, sent_at: float) -> None:
        """A renewal sent at monotonic time `sent_at` succeeded."""
        self._trusted_until = max(self._trusted_until, sent_at + self._seconds * _TRUSTED)

    def trusted(self) -> bool:
        """Whether this replica may act as the run's holder without asking (sending live events)."""
        return self.settled or (not self.lost and time.monotonic() < self._trusted_until)
