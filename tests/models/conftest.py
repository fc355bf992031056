"""Session fixtures of synthetic model data (generators in `synthetic.py`)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.models.synthetic import normal_features, traffic


@pytest.fixture(scope="session")
def feature_rows() -> pd.DataFrame:
    return normal_features(1500, seed=1)


@pytest.fixture(scope="session")
def hourly_traffic() -> pd.DataFrame:
    """Six hours with a one-hour "day": enough for the small contract-test forecasters."""
    return traffic(360, season=60, seed=2)
