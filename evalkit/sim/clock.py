"""The simulator's own clock: wall time plus an offset that tests (or ``POST /_simulator/clock``) advance.

Batches end, prompt-cache entries expire and rate-limit buckets refill on this clock, so an hour-long
effect (a 1 h cache entry that has expired before the main batch starts) can be shown in a second.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class SimClock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        """Seconds since the epoch, on the simulator's timeline."""
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the simulator's clock only moves forward")
        with self._lock:
            self._offset += seconds
