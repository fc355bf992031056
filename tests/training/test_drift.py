"""The drift test behind ``ooda train --if-drift``: a shift of a feature's distribution is
drift, the same distribution or a negligible shift on many rows is not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training import feature_drift


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "latency": rng.lognormal(np.log(80) + shift, 0.2, n),
            "errors": rng.beta(1, 200, n),
        }
    )


def test_a_shifted_feature_drifts_and_a_steady_one_does_not() -> None:
    rng = np.random.default_rng(3)
    reference, recent = _frame(rng, 5000), _frame(rng, 1440, shift=0.3)
    recent["errors"] = rng.beta(1, 200, 1440)
    got = {d.feature: d for d in feature_drift(reference, recent, ["latency", "errors"])}
    assert got["latency"].drifted and got["latency"].statistic > 0.4
    assert not got["errors"].drifted


def test_a_tiny_shift_on_many_rows_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(4)
    reference, recent = _frame(rng, 40_000), _frame(rng, 40_000, shift=0.02)
    (latency,) = feature_drift(reference, recent, ["latency"])
    assert latency.p_value < 1e-6, "significant on this many rows"
    assert not latency.drifted, "but below the minimum effect"
    (strict,) = feature_drift(reference, recent, ["latency"], min_effect=0.01)
    assert strict.drifted


def test_too_few_values_are_not_judged() -> None:
    rng = np.random.default_rng(5)
    reference = _frame(rng, 500)
    recent = _frame(rng, 500, shift=1.0)
    recent.loc[10:, "latency"] = np.nan
    (latency,) = feature_drift(reference, recent, ["latency"])
    assert not latency.drifted and np.isnan(latency.p_value) and latency.recent_rows == 10
