"""External traffic: a deterministic function of time and seed.

Noise is drawn per minute from a generator seeded by (seed, day), not from a running stream, so
the traffic at a given instant is the same whatever steps led there -- a replayed or re-seeded
lab sees exactly the same load.
"""

from __future__ import annotations

import math

import numpy as np

from lab._settings import TrafficSettings

_DAY_S = 86_400.0
_WEEK_S = 7 * _DAY_S
_MONDAY_EPOCH_OFFSET_S = 3 * _DAY_S  # 1970-01-01 was a Thursday


class TrafficModel:
    """Request rate into the entry service at a given epoch second (surges excluded)."""

    def __init__(self, settings: TrafficSettings, seed: int) -> None:
        self._s = settings
        self._seed = seed
        self._blocks: dict[int, np.ndarray] = {}

    def _noise_knot(self, minute: int) -> float:
        day, index = divmod(minute, 1440)
        block = self._blocks.get(day)
        if block is None:
            if len(self._blocks) > 4:
                self._blocks.clear()
            block = np.random.default_rng([self._seed, 0x7A1, day]).standard_normal(1440)
            self._blocks[day] = block
        return float(block[index])

    def rate(self, t: float) -> float:
        """Requests per second at epoch second ``t``."""
        s = self._s
        hour = (t % _DAY_S) / 3600.0
        daily = 1.0 + s.daily_amplitude * math.cos(2 * math.pi * (hour - s.daily_peak_hour) / 24)
        week_day = ((t + _MONDAY_EPOCH_OFFSET_S) % _WEEK_S) / _DAY_S
        weekly = 1.0 + s.weekly_amplitude * math.cos(
            2 * math.pi * (week_day - s.weekly_peak_day) / 7
        )
        minute, frac = divmod(t / 60.0, 1.0)
        z = (1 - frac) * self._noise_knot(int(minute)) + frac * self._noise_knot(int(minute) + 1)
        noise = math.exp(s.noise_sigma * z - 0.5 * s.noise_sigma**2)
        return s.base_rps * daily * weekly * noise
