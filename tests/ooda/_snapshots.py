"""Snapshots for the runbooks' unit tests: one region's tick as the loop would hand it over."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from contracts import WorkloadState
from ooda._records import ServiceView, Snapshot


def region_snapshot(
    at: datetime,
    workloads: dict[str, WorkloadState],
    histories: dict[str, pd.DataFrame] | None = None,
    **extra: Any,
) -> Snapshot:
    """The ``shop`` namespace of eu-west-1 at ``at``: each service's metric history in
    ``histories``, no anomaly scores or forecast unless ``extra`` gives them (or families,
    queues, an orientation)."""
    views = {s: ServiceView(s, h) for s, h in (histories or {}).items()}
    return Snapshot(
        at=at,
        region="eu-west-1",
        namespace="shop",
        views=views,
        workloads=workloads,
        scores=extra.pop("scores", None),
        forecast=extra.pop("forecast", None),
        **extra,
    )
