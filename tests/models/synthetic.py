"""Synthetic data for the models tests: normal feature rows and daily-seasonal traffic."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import DEFAULT_DETECTOR_FEATURES

SERVICES = ("frontend", "checkout", "payments")
START = pd.Timestamp("2024-01-01", tz="UTC")


def normal_features(n: int, seed: int) -> pd.DataFrame:
    """Feature rows of healthy services (restarts almost always 0)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "service": rng.choice(SERVICES, size=n),
            "error_rate": np.abs(rng.normal(0.002, 0.001, n)),
            "p95_latency_ms": rng.normal(80.0, 8.0, n),
            "restarts": (rng.random(n) < 0.002).astype(float),
            "not_ready_ratio": (rng.random(n) < 0.004) * 0.2,
            "cpu_utilisation": rng.normal(0.5, 0.08, n),
            "request_rate_ratio_1h": rng.normal(1.0, 0.05, n),
        }
    )
    assert tuple(frame.columns[1:]) == DEFAULT_DETECTOR_FEATURES
    return frame


def traffic(
    minutes: int,
    *,
    season: int = 1440,
    noise: float = 0.05,
    seed: int = 0,
    services: tuple[str, ...] = SERVICES,
) -> pd.DataFrame:
    """Per-minute request rate: level * (1 + 0.5 sin(daily phase)) * (1 + noise)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=minutes, freq="min")
    phase = 2 * np.pi * (np.arange(minutes) % season) / season
    parts = [
        pd.DataFrame(
            {
                "timestamp": index,
                "service": service,
                "request_rate": 100.0
                * (i + 1)
                * (1 + 0.5 * np.sin(phase))
                * (1 + noise * rng.standard_normal(minutes)),
            }
        )
        for i, service in enumerate(services)
    ]
    return pd.concat(parts, ignore_index=True)
