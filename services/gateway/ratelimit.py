"""Token-bucket rate limits per key (a user id, or a client address).

Each key gets `burst` tokens refilled at `rate_per_s`; a call takes one. Buckets live in memory, per
gateway process (with several replicas the effective limit is per replica), and the least recently used
are forgotten beyond `max_keys` so a flood of addresses cannot exhaust memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from prometheus_client import Counter

RATE_LIMITED = Counter("gateway_rate_limited_total", "Calls refused by a rate limit.", ["kind"])


class RateLimiter:
    def __init__(self, kind: str, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        self.kind = kind
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, updated)

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0

    def acquire(self, key: str, cost: float = 1.0) -> float | None:
        """Take `cost` tokens for `key`: None if allowed, else seconds until it would be."""
        if not self.enabled or not key:
            return None
        now = time.monotonic()
        tokens, updated = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.rate_per_s)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            wait = None
        else:
            self._buckets[key] = (tokens, now)
            wait = (cost - tokens) / self.rate_per_s
            RATE_LIMITED.labels(self.kind).inc()
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait
