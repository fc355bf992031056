"""Anomaly bodies parsed into columns, and scored by ours or by any other pyfunc detector."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models import RobustZScoreDetector
from serving import InvalidInputError, LoadedModel, MalformedBodyError, RequestTooLargeError
from serving._columns import anomaly_body, parse_anomaly
from serving._scorers import detect

FEATURES = ("error_rate", "p95_latency_ms")


def _detector() -> RobustZScoreDetector:
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {
            "error_rate": np.abs(rng.normal(0.001, 0.0005, 300)),
            "p95_latency_ms": rng.normal(80, 5, 300),
        }
    )
    return RobustZScoreDetector(features=FEATURES).fit(train)


class _Ours:
    """What ``models.DetectorModel`` exposes: the detector itself."""

    def __init__(self) -> None:
        self.detector = _detector()


class _Foreign:
    """A pyfunc detector of someone else's: only ``predict`` on a frame."""

    def predict(self, frame: pd.DataFrame, params: object = None) -> pd.DataFrame:
        score = (frame["p95_latency_ms"] > 500).astype(float)
        return pd.DataFrame({"anomaly_score": score, "is_anomaly": score >= 0.5})


def test_rows_and_columns_parse_to_the_same_float_columns() -> None:
    rows = parse_anomaly(
        b'{"rows": [{"service": "a", "error_rate": 0.1, "p95_latency_ms": null},'
        b' {"service": "b", "error_rate": 2, "p95_latency_ms": 80}]}',
        10,
    )
    columns = parse_anomaly(
        json.dumps(
            {
                "columns": {
                    "service": ["a", "b"],
                    "error_rate": [0.1, 2],
                    "p95_latency_ms": [None, 80],
                }
            }
        ).encode(),
        10,
    )
    assert rows.service == columns.service == ["a", "b"]
    assert (rows.columnar, columns.columnar) == (False, True)
    for name in FEATURES:
        np.testing.assert_array_equal(rows.columns[name], columns.columns[name])
    assert np.isnan(rows.columns["p95_latency_ms"][0])


@pytest.mark.parametrize(
    ("body", "error", "needle"),
    [
        (b"{", MalformedBodyError, "malformed JSON"),
        (b'{"rows": [{"service": "a", "x": NaN}]}', InvalidInputError, "'x'"),
        (b'{"rows": [{"service": "a", "x": "1"}]}', InvalidInputError, "'x'"),
        (b'{"columns": {"service": ["a", "b", "c"]}}', RequestTooLargeError, "at most 2"),
        (b'{"services": ["a"], "columns": {}}', InvalidInputError, "exactly one"),
        (b'{"rows": [], "extra": 1}', InvalidInputError, "unknown fields"),
    ],
)
def test_bad_bodies_name_what_is_wrong(body: bytes, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        parse_anomaly(body, 2)


def test_ours_score_the_matrix_exactly_as_the_frame_and_foreign_models_get_a_frame() -> None:
    parsed = parse_anomaly(
        b'{"columns": {"service": ["a", "b"], "error_rate": [0.001, 0.3],'
        b' "p95_latency_ms": [81, 900]}}',
        10,
    )
    ours = _Ours()
    loaded = LoadedModel("3", None, ("service", *FEATURES), lambda f: None, ours)  # type: ignore[arg-type]
    scores, flags = detect(loaded, parsed.service, parsed.columns, "ooda-detector")
    frame = pd.DataFrame({"service": parsed.service, **parsed.columns})
    np.testing.assert_array_equal(scores, ours.detector.score(frame))
    assert flags.tolist() == [False, True]

    foreign = _Foreign()
    loaded = LoadedModel("4", None, (), foreign.predict, foreign)  # type: ignore[arg-type]
    scores, flags = detect(loaded, parsed.service, parsed.columns, "other")
    assert scores.tolist() == [0.0, 1.0] and flags.tolist() == [False, True]

    with pytest.raises(InvalidInputError, match=r"needs columns \['p95_latency_ms'\]"):
        detect(
            LoadedModel("3", None, (), lambda f: None, ours),  # type: ignore[arg-type]
            ["a"],
            {"error_rate": np.array([0.1])},
            "ooda-detector",
        )
    body = json.loads(anomaly_body("m", "3", ["a", "b"], np.array([0.1, np.nan]), flags, True))
    assert body["columns"]["anomaly_score"] == [0.1, None]
