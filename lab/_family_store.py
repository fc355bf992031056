"""What the lab's exporters report beside the services: nodes, and (as the lab grows them)
databases, Kafka, queues and upstream APIs.

These families have few series (a node, a partition, a queue), so each is one dense matrix
``[scrape, series, value]`` that grows as scrapes and series are added; a series not scraped
at some scrape is NaN there, as Prometheus would have no sample. Pods are not kept here: the
scrape store already holds their samples (``lab._store``). Columns named ``..._rate`` are
stored as the exporter's counter and turned into a per-second rate by the query.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from contracts import FAMILIES, MetricFamily


def is_rate(column: str) -> bool:
    """Whether a family column is a counter queried as a rate."""
    return column.endswith("_rate")


class FamilyStore:
    """Every scrape of the non-service families."""

    def __init__(self) -> None:
        self._series: dict[MetricFamily, dict[tuple[str, ...], int]] = {}
        self._values: dict[MetricFamily, np.ndarray] = {}

    def record(
        self,
        scrape: int,
        family: MetricFamily,
        keys: Sequence[tuple[str, ...]],
        values: np.ndarray,
    ) -> None:
        """Store scrape ``scrape``'s samples of ``family``: one row of ``values`` (columns
        as in ``FAMILIES[family].values``) per entry of ``keys``."""
        width = len(FAMILIES[family].values)
        index = self._series.setdefault(family, {})
        ids = []
        for key in keys:
            found = index.get(key)
            if found is None:
                found = index[key] = len(index)
            ids.append(found)
        matrix = self._values.get(family)
        if matrix is None:
            matrix = np.full((64, max(4, len(index)), width), np.nan)
        rows, cols = matrix.shape[0], matrix.shape[1]
        if scrape >= rows or len(index) > cols:
            grown = np.full((max(rows, 2 * (scrape + 1)), max(cols, 2 * len(index)), width), np.nan)
            grown[:rows, :cols] = matrix
            matrix = grown
        matrix[scrape, ids] = values
        self._values[family] = matrix

    def series(self, family: MetricFamily) -> list[tuple[str, ...]]:
        """The key of each series of ``family``, by series number."""
        return list(self._series.get(family, {}))

    def values(self, family: MetricFamily, scrapes: np.ndarray) -> np.ndarray:
        """``[i, series, value]`` at scrape ``scrapes[i]`` (NaN: no sample then)."""
        matrix = self._values.get(family)
        width = len(FAMILIES[family].values)
        known = len(self._series.get(family, {}))
        out = np.full((len(scrapes), known, width), np.nan)
        if matrix is None:
            return out
        have = scrapes < matrix.shape[0]
        out[have] = matrix[scrapes[have], :known]
        return out
