"""Per-identity request rate limits: a fixed window per caller, in this process's memory."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from skeino.config import ConfigError

_PERIODS = {"second": 1, "minute": 60, "hour": 3600}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window restarts

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [(b"x-ratelimit-limit", str(self.limit).encode()),
               (b"x-ratelimit-remaining", str(self.remaining).encode()),
               (b"x-ratelimit-reset", str(self.reset).encode())]
        if not self.allowed:
            out.append((b"retry-after", str(self.reset).encode()))
        return out


class RateLimiter:
    """`limit` requests per `period` seconds for each identity; windows of idle callers are dropped."""

    def __init__(self, limit: int, period: int) -> None:
        self.limit = limit
        self.period = period
        self._windows: dict[str, tuple[float, int]] = {}
        self._next_sweep = 0.0

    @classmethod
    def parse(cls, value: str | None) -> "RateLimiter | None":
        """`N/second`, `N/minute` or `N/hour`; empty or `0` turns limiting off."""
        if not value or value.strip() == "0":
            return None
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(second|minute|hour)\s*", value)
        if not match or int(match.group(1)) < 1:
            raise ConfigError(f"SKEINO_RATE_LIMIT={value!r}: expected N/second, N/minute or N/hour")
        return cls(int(match.group(1)), _PERIODS[match.group(2)])

    def hit(self, identity: str, now: float | None = None) -> Verdict:
        now = time.monotonic() if now is None else now
        if now >= self._next_sweep:
            self._windows = {k: w for k, w in self._windows.items() if now - w[0] < self.period}
            self._next_sweep = now + self.period
        start, count = self._windows.get(identity, (now, 0))
        if now - start >= self.period:
            start, count = now, 0
        reset = max(1, math.ceil(start + self.period - now))
        if count >= self.limit:
            return Verdict(False, self.limit, 0, reset)
        self._windows[identity] = (start, count + 1)
        return Verdict(True, self.limit, self.limit - count - 1, reset)
