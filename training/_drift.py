"""Has the data moved away from what the champion learned? A test per feature.

Retraining on a timer wastes compute when nothing changed and waits too long when something
did. The test here compares each feature's distribution in the champion's training window
with a recent window: a two-sample Kolmogorov-Smirnov test per feature, Bonferroni-corrected
over the features. Over weeks of minutes even a negligible shift is significant, so a feature
drifts only when the KS statistic (the largest gap between the two empirical distribution
functions) also reaches a minimum effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's test."""

    feature: str
    statistic: float
    """The KS statistic D in [0, 1]."""
    p_value: float
    reference_rows: int
    recent_rows: int
    drifted: bool


def feature_drift(
    reference: pd.DataFrame,
    recent: pd.DataFrame,
    features: Sequence[str],
    *,
    alpha: float = 0.01,
    min_effect: float = 0.2,
) -> list[FeatureDrift]:
    """Per feature: drifted when ``p < alpha / len(features)`` and ``D >= min_effect``.

    NaNs are left out; a feature with fewer than 20 values on either side is not judged
    (reported with ``p_value`` NaN, not drifted).
    """
    out = []
    for name in features:
        a = reference[name].to_numpy(dtype=float)
        b = recent[name].to_numpy(dtype=float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < 20 or len(b) < 20:
            out.append(FeatureDrift(name, float("nan"), float("nan"), len(a), len(b), False))
            continue
        test = ks_2samp(a, b)
        d, p = float(test.statistic), float(test.pvalue)
        drifted = p < alpha / max(1, len(features)) and d >= min_effect
        out.append(FeatureDrift(name, d, p, len(a), len(b), drifted))
    return out
