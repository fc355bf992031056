"""PetShop's files as they are, for ``ooda rca`` and its benchmark.

``graph.csv`` is an adjacency matrix whose row ``i``, column ``j`` is non-zero when ``i`` calls
``j``; ``metrics.csv`` has three header rows (microservice, metric, statistic) and a
``unix_timestamp`` index at 5-minute steps. Every problem is an :class:`RcaInputError` naming
the file and what is wrong with it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from ooda._errors import RcaInputError
from ooda._rca import ASKED_RCA, HARMFUL, RcaSettings, rank_causes


def read_graph(path: Path) -> dict[str, list[str]]:
    """Each component and the components it calls."""
    try:
        frame = pd.read_csv(path, index_col=0)
    except (OSError, ValueError) as exc:
        raise RcaInputError(f"{path}: cannot read the graph: {exc}") from None
    rows, cols = [str(i) for i in frame.index], [str(c) for c in frame.columns]
    if sorted(rows) != sorted(cols):
        extra = sorted(set(rows) ^ set(cols))[:3]
        raise RcaInputError(
            f"{path}: not an adjacency matrix (rows and columns differ, e.g. {extra})"
        )
    try:
        values = frame.apply(pd.to_numeric).fillna(0.0).to_numpy()
    except ValueError as exc:
        raise RcaInputError(f"{path}: non-numeric entry in the adjacency matrix: {exc}") from None
    return {row: [cols[j] for j in range(len(cols)) if values[i, j]] for i, row in enumerate(rows)}


def read_metrics(path: Path, metric: str, statistic: str) -> pd.DataFrame:
    """One metric and statistic of every component: a column per component, a row per step
    (oldest first)."""
    try:
        frame = pd.read_csv(path, header=[0, 1, 2], index_col=0)
    except (OSError, ValueError, IndexError) as exc:
        raise RcaInputError(f"{path}: cannot read the metrics: {exc}") from None
    if frame.columns.nlevels != 3:
        raise RcaInputError(f"{path}: expected three header rows (microservice, metric, statistic)")
    chosen = [c for c in frame.columns if c[1] == metric and c[2] == statistic]
    if not chosen:
        have = sorted({f"{c[1]}/{c[2]}" for c in frame.columns})[:8]
        raise RcaInputError(f"{path}: no {metric}/{statistic} columns (has {have})")
    out = frame[chosen].apply(pd.to_numeric, errors="coerce")
    out.columns = [str(c[0]) for c in chosen]
    out = out.loc[:, ~out.columns.duplicated()]
    try:
        out.index = pd.to_numeric(out.index)
    except ValueError:
        raise RcaInputError(f"{path}: the index is not unix timestamps") from None
    return out.sort_index()


def check_match(
    graph: dict[str, list[str]], metrics: pd.DataFrame, path: Path, target: str | None
) -> list[str]:
    """The metrics' components that are not in the graph (left out of the ranking: a note,
    not an error). RcaInputError when none is in the graph, or the ``target`` (when given:
    the abnormal window's) is not in the graph or not in the metrics."""
    unknown = [str(c) for c in metrics.columns if c not in graph]
    if len(unknown) == len(metrics.columns):
        raise RcaInputError(f"{path}: none of its components is in the graph (e.g. {unknown[:3]})")
    if target is None:
        return unknown
    if target not in graph:
        raise RcaInputError(f"target {target!r} is not a node of the graph")
    if target not in metrics.columns:
        raise RcaInputError(f"{path}: no column for the target {target!r}")
    return unknown


def check_window(metrics: pd.DataFrame, path: Path, target: str | None, what: str) -> None:
    """RcaInputError unless the window has rows, a value, and (when given) the ``target`` a
    value in it."""
    if metrics.empty:
        raise RcaInputError(f"{path}: no rows of {what}")
    if metrics.isna().all().all():
        raise RcaInputError(f"{path}: every {what} value is NaN")
    if target is not None and metrics[target].isna().all():
        raise RcaInputError(f"{path}: the target's column {target!r} ({what}) is all NaN")


def _window(
    calls: dict[str, list[str]], metric: str, statistic: str, path: Path, target: str | None
) -> tuple[pd.DataFrame, list[str]]:
    """One checked window of ``path`` and the note on components the graph lacks."""
    window = read_metrics(path, metric, statistic)
    outside = check_match(calls, window, path, target)
    check_window(window, path, target, f"{metric}/{statistic}")
    if not outside:
        return window, []
    more = " ..." if len(outside) > 5 else ""
    note = (
        f"{path}: {len(outside)} component(s) not in the graph, left out of the ranking:"
        f" {', '.join(outside[:5])}{more}"
    )
    return window, [note]


def rca_files(
    graph: Path,
    abnormal: Path,
    target_node: str,
    target_metric: str,
    target_statistic: str = "Average",
    normal: Path | None = None,
    settings: RcaSettings | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """``ooda rca``: the ranking (``node, score``, best first; empty: no root cause found),
    with :data:`ASKED_RCA` unless ``settings`` are given, and notes on what was left out."""
    if target_metric not in HARMFUL:
        raise RcaInputError(
            f"unknown target metric {target_metric!r}; expected one of {sorted(HARMFUL)}"
        )
    calls = read_graph(graph)
    read = partial(_window, calls, target_metric, target_statistic)
    bad, notes = read(abnormal, target_node)
    good = None
    if normal is not None:  # a normal window needs no symptom of the target
        good, more = read(normal, None)
        notes += more
    causes = rank_causes(
        calls,
        bad,
        target_node,
        direction=HARMFUL[target_metric],
        normal=good,
        settings=settings or ASKED_RCA,
    )
    ranking = pd.DataFrame(
        {"node": [c.node for c in causes], "score": [round(c.score, 6) for c in causes]}
    )
    return ranking, notes
