"""Fuzz: no metric frame and no model answer, however broken, gets an exception out of
``tick`` or a mutating call into the cluster.

Broken inputs are made from good ones: the lab's real metrics frame and the RuleScorer's
real answers, with NaN, infinities, negatives, strings and objects put into any cell, rows
dropped (gaps), duplicated, shuffled or moved into the future, timestamps made naive,
stringly or NaT, columns dropped. Nothing is made larger than it was (a plausible surge is
not garbage: acting on it would be right), so the lab, idle, gives no reason to act. And
the loop must recognise the garbage in its sanitisers (``clean_metrics``, ``clean_scores``,
``check_forecast``): a stage that fails with an exception is caught, but it is a bug.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actuators import CallSpy, spy_on
from contracts import METRIC_COLUMNS, METRIC_VALUE_COLUMNS
from lab import Lab
from ooda import (
    AnomalyScores,
    BadMetricsError,
    ControlLoop,
    LoadForecast,
    OodaSettings,
    RuleScorer,
)
from ooda import clean_metrics as clean
from tests.ooda._harness import lab_kube, make_lab, make_loop

FUZZ = settings(
    max_examples=int(os.environ.get("OODA_FUZZ_EXAMPLES", "60")),
    deadline=None,
    database=None,  # no example database: every run draws afresh
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SERVICES = ("frontend", "checkout", "payments")
#: Stage failures the loop survives but that mean garbage got past the sanitisers.
CAUGHT_LATE = ("observe failed", "decide failed", "act failed", "verify failed")


@cache
def idle() -> tuple[Lab, pd.DataFrame, LoadForecast]:
    """The idle lab (built once), its metrics frame of this tick and a forecast of it."""
    lab = make_lab()
    now = lab.clock.now()
    frame = lab.source.query_range(now - timedelta(minutes=75), now, timedelta(minutes=1))
    history = frame[["service", "timestamp", "request_rate"]].tail(60 * 3)
    return lab, frame, RuleScorer().forecast_history(history, 30)


# -- strategies ------------------------------------------------------------------------------
JUNK: list[Any] = [np.nan, np.inf, -np.inf, -1.0, -1e9, "n/a", "", None, b"\x00", [1], {}, object()]
junk = st.one_of(st.sampled_from(JUNK), st.floats(max_value=-1e-9), st.text(max_size=5))
index = st.integers(min_value=0, max_value=100_000)

Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def set_cell(column: str, row: int, value: Any) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty or column not in frame.columns:
            return frame
        cells = frame[column].astype(object).tolist()
        cells[row % len(frame)] = value
        fits = pd.api.types.is_float_dtype(frame[column].dtype) and isinstance(value, float)
        dtype = frame[column].dtype if fits else object
        return frame.assign(**{column: pd.Series(cells, index=frame.index, dtype=dtype)})

    return mutate


def drop_rows(row: int, count: int) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        start = row % max(len(frame), 1)
        return frame.drop(frame.index[start : start + count])

    return mutate


def duplicate_rows(row: int, count: int) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        start = row % max(len(frame), 1)
        return pd.concat([frame, frame.iloc[start : start + count]])

    return mutate


def shuffle(seed: int) -> Mutation:
    return lambda frame: frame.sample(frac=1.0, random_state=seed)


def into_future(row: int, minutes: int) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        if "timestamp" not in frame.columns or frame.empty:
            return frame
        if not pd.api.types.is_datetime64_any_dtype(frame["timestamp"]):
            return frame
        frame = frame.copy()
        at = frame.columns.get_loc("timestamp")
        frame.iloc[row % len(frame), at] += pd.Timedelta(minutes=minutes)
        return frame

    return mutate


def stamps(kind: str) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        if "timestamp" not in frame.columns or frame.empty:
            return frame
        ts = frame["timestamp"]
        if not isinstance(ts.dtype, pd.DatetimeTZDtype):
            return frame
        if kind == "naive":
            return frame.assign(timestamp=ts.dt.tz_localize(None))
        if kind == "strings":
            return frame.assign(timestamp=ts.astype(str))
        if kind == "epoch":
            return frame.assign(timestamp=ts.astype("int64") // 10**9)
        frame = frame.copy()  # NaT in the last row
        frame.iloc[-1:, frame.columns.get_loc("timestamp")] = pd.NaT
        return frame

    return mutate


def drop_column(column: str) -> Mutation:
    return lambda frame: frame.drop(columns=[column], errors="ignore")


def metric_mutations(columns: tuple[str, ...]) -> st.SearchStrategy[Mutation]:
    return st.one_of(
        st.builds(set_cell, st.sampled_from(columns), index, junk),
        st.builds(drop_rows, index, st.integers(1, 40)),
        st.builds(duplicate_rows, index, st.integers(1, 10)),
        st.builds(shuffle, st.integers(0, 2**31)),
        st.builds(into_future, index, st.integers(1, 600)),
        st.builds(stamps, st.sampled_from(["naive", "strings", "epoch", "nat"])),
        st.builds(drop_column, st.sampled_from(columns)),
    )


def broken(base: pd.DataFrame, mutations: list[Mutation]) -> pd.DataFrame:
    frame = base.copy()
    for mutate in mutations:
        frame = mutate(frame)
    return frame


# -- the loop on garbage ---------------------------------------------------------------------
class FixedSource:
    """A metric source that answers one frame, whatever is asked."""

    def __init__(self, frame: Any) -> None:
        self.frame = frame

    def query_range(self, start: datetime, end: datetime, step: Any) -> Any:
        return self.frame


def loop_on(source: Any = None, scorer: Any = None) -> tuple[ControlLoop, list[CallSpy]]:
    """A fresh loop on the idle lab, its kube clients spied on."""
    lab, frame, _ = idle()
    spied, spies = spy_on(lab_kube(lab))
    loop = make_loop(lab, source=source or FixedSource(frame), scorer=scorer, kube=spied)
    return loop, spies


def assert_survived(loop: ControlLoop, spies: list[CallSpy]) -> None:
    for _ in range(2):
        loop.tick()  # raises: the test fails
    assert [m for spy in spies for m in spy.mutations] == []
    late = [e.outcome for e in loop.audit.entries("observation") if e.outcome.count("failed")]
    assert not [p for p in late if any(c in p for c in CAUGHT_LATE)], late


@FUZZ
@given(st.lists(metric_mutations(METRIC_COLUMNS), max_size=8))
def test_broken_metric_frames_never_kill_the_loop_nor_move_the_cluster(
    mutations: list[Mutation],
) -> None:
    """Any mix of broken cells, gaps, duplicates, disorder and bad timestamps: no exception,
    no mutating call, and every problem caught by ``clean_metrics`` or the service views."""
    _, frame, _ = idle()
    loop, spies = loop_on(source=FixedSource(broken(frame, mutations)))
    assert_survived(loop, spies)


class GarbageScorer:
    """Answers what the strategies drew instead of the RuleScorer's real answers."""

    def __init__(
        self,
        scores: Callable[[AnomalyScores], Any],
        forecast: Callable[[LoadForecast], Any],
    ) -> None:
        self.inner = RuleScorer()
        self.scores = scores
        self.forecast = forecast

    def anomaly_rows(self, rows: pd.DataFrame) -> Any:
        return self.scores(self.inner.anomaly_rows(rows))

    def forecast_history(self, history: pd.DataFrame, horizon: int) -> Any:
        return self.forecast(self.inner.forecast_history(history, horizon))


WHOLE_ANSWER: list[Any] = [None, "OK", 0.5, [], {}, pd.DataFrame()]
score_value = st.one_of(
    st.sampled_from([np.nan, np.inf, -np.inf, None, "high", "0.9", [0.9], True]),
    st.floats(allow_nan=True, allow_infinity=True),
)
flag_value = st.sampled_from([True, False, np.True_, "yes", "no", None, 1, 0.0])


@st.composite
def score_answers(draw: st.DrawFn) -> Callable[[AnomalyScores], Any]:
    if draw(st.booleans()) and draw(st.booleans()):
        whole = draw(st.sampled_from(WHOLE_ANSWER))
        return lambda _: whole
    scores = draw(st.dictionaries(st.sampled_from((*SERVICES, "ghost")), score_value))
    flags = draw(st.dictionaries(st.sampled_from((*SERVICES, "ghost")), flag_value))
    drop = draw(st.sets(st.sampled_from(SERVICES)))

    def answer(real: AnomalyScores) -> AnomalyScores:
        kept = {s: v for s, v in real.scores.items() if s not in drop}
        marks = {s: v for s, v in real.anomalous.items() if s not in drop}
        # Garbage on purpose: the values a broken model could answer with.
        return replace(real, scores=kept | scores, anomalous=marks | flags)  # type: ignore[arg-type]

    return answer


def scale(row: int, count: int, factor: float) -> Mutation:
    """Quantiles of some rows times ``factor`` (only absurd factors are drawn)."""

    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        start = row % max(len(frame), 1)
        for q in ("q10", "q50", "q90"):
            if q in frame.columns and pd.api.types.is_float_dtype(frame[q].dtype):
                at = frame.columns.get_loc(q)
                frame.iloc[start : start + count, at] = frame.iloc[start : start + count, at] * (
                    factor
                )
        return frame

    return mutate


FORECAST_COLUMNS = ("service", "timestamp", "q10", "q50", "q90")
absurd = st.one_of(st.floats(min_value=100, max_value=1e12), st.floats(max_value=-1e-3))


@st.composite
def forecast_answers(draw: st.DrawFn) -> Callable[[LoadForecast], Any]:
    if draw(st.booleans()) and draw(st.booleans()):
        whole = draw(st.sampled_from(WHOLE_ANSWER))
        return lambda _: whole
    scales = draw(st.lists(st.builds(scale, index, st.integers(1, 90), absurd), max_size=2))
    mutations = scales + draw(st.lists(metric_mutations(FORECAST_COLUMNS), max_size=4))
    return lambda real: replace(real, frame=broken(real.frame, mutations))


@FUZZ
@given(score_answers(), forecast_answers())
def test_broken_model_answers_never_kill_the_loop_nor_move_the_cluster(
    scores: Callable[[AnomalyScores], Any], forecast: Callable[[LoadForecast], Any]
) -> None:
    """Scores and forecasts with NaN, infinities, strings, missing or unknown services,
    wrong columns, absurd values or no frame at all: no exception, no mutating call."""
    loop, spies = loop_on(scorer=GarbageScorer(scores, forecast))
    assert_survived(loop, spies)
    kept = loop._forecast  # what capacity would be planned on
    if kept is not None:
        _, frame, _ = idle()
        assert isinstance(kept.frame["timestamp"].dtype, pd.DatetimeTZDtype)
        values = kept.frame[["q10", "q50", "q90"]].to_numpy(dtype=float)
        assert np.isfinite(values).all() and (values >= 0).all()
        observed = frame.groupby("service")["request_rate"].max()
        upper = kept.frame.groupby("service")["q90"].max()
        both = upper.index.intersection(observed.index)
        growth = OodaSettings().loop.max_forecast_growth
        assert (upper[both] <= growth * observed[both]).all(), "an absurd forecast was kept"


# -- clean_metrics alone ---------------------------------------------------------------------
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(JUNK),
    st.text(max_size=4),
    st.booleans(),
)
stamp = st.one_of(
    st.datetimes(
        min_value=datetime(2026, 11, 16, 8, 0),
        max_value=datetime(2026, 11, 16, 12, 0),
        timezones=st.sampled_from([UTC, None]),
    ),
    st.sampled_from([None, "2026-11-16T10:00:00Z", "yesterday", 0, pd.NaT]),
)


@st.composite
def tidy_frames(draw: st.DrawFn) -> Any:
    """Frames over ``METRIC_COLUMNS`` from scratch, any cell anything; sometimes not a frame."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(WHOLE_ANSWER))
    n = draw(st.integers(0, 12))
    data: dict[str, list[Any]] = {
        "timestamp": draw(st.lists(stamp, min_size=n, max_size=n)),
        "region": ["eu-west-1"] * n,
        "service": draw(
            st.lists(st.sampled_from((*SERVICES, "", None, 7)), min_size=n, max_size=n)
        ),
    }
    for column in METRIC_VALUE_COLUMNS:
        data[column] = draw(st.lists(cell, min_size=n, max_size=n))
    frame = pd.DataFrame(data)
    if n and draw(st.booleans()):  # a well-typed timestamp column, as a good exporter sends
        start = NOW.replace(tzinfo=None) - timedelta(minutes=n)
        frame["timestamp"] = pd.date_range(start, periods=n, freq="min")
        frame["timestamp"] = frame["timestamp"].dt.tz_localize(draw(st.sampled_from([UTC, None])))
    for mutate in draw(st.lists(metric_mutations(METRIC_COLUMNS), max_size=4)):
        frame = mutate(frame)
    return frame


@settings(FUZZ, max_examples=5 * FUZZ.max_examples)
@given(tidy_frames())
def test_clean_metrics_raises_nothing_but_bad_metrics_error(frame: Any) -> None:
    """``clean_metrics`` answers a clean frame (float values, aware timestamps, no duplicate
    or future rows) or raises ``BadMetricsError``; nothing else."""
    try:
        cleaned, notes = clean(frame, NOW)
    except BadMetricsError:
        return
    assert list(cleaned.columns) == list(METRIC_COLUMNS)
    assert isinstance(cleaned["timestamp"].dtype, pd.DatetimeTZDtype)
    assert all(pd.api.types.is_float_dtype(cleaned[c].dtype) for c in METRIC_VALUE_COLUMNS)
    values = cleaned[list(METRIC_VALUE_COLUMNS)].to_numpy(dtype=float)
    assert not np.isinf(values).any()
    assert not (values[~np.isnan(values)] < 0).any()
    assert not cleaned["timestamp"].isna().any()
    assert (cleaned["timestamp"] <= pd.Timestamp(NOW + timedelta(minutes=1))).all()
    assert not cleaned.duplicated(["service", "timestamp"]).any()
    assert isinstance(notes, list)
