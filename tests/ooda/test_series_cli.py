"""``ooda score-series``: NAB's format in, one causal score per row out, bad input refused."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ooda._series import read_series
from ooda.cli import main


def _write(path: Path, n: int = 1200, jump_at: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    values = 20 + rng.normal(0, 1, n)
    values[jump_at:] += 15
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2014-02-14 14:30", periods=n, freq="5min").strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "value": np.round(values, 3),
        }
    )
    frame.to_csv(path, index=False)
    return frame


def test_score_series_writes_one_scored_row_per_input_row(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.csv")
    assert (
        main(
            [
                "score-series",
                "--input",
                str(tmp_path / "in.csv"),
                "--output",
                str(tmp_path / "out.csv"),
            ]
        )
        == 0
    )
    out = pd.read_csv(tmp_path / "out.csv", dtype={"timestamp": str})
    assert list(out.columns) == ["timestamp", "value", "anomaly_score"]
    assert out["timestamp"].tolist() == src["timestamp"].tolist()
    np.testing.assert_allclose(out["value"], src["value"])
    assert out["anomaly_score"].between(0, 1).all()
    assert out["anomaly_score"].iloc[1000:1020].max() >= 0.5


def test_score_series_of_a_prefix_matches(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.csv")
    src.iloc[:1010].to_csv(tmp_path / "prefix.csv", index=False)
    for name in ("in", "prefix"):
        assert (
            main(
                [
                    "score-series",
                    "--input",
                    str(tmp_path / f"{name}.csv"),
                    "--output",
                    str(tmp_path / f"{name}.out.csv"),
                ]
            )
            == 0
        )
    whole = pd.read_csv(tmp_path / "in.out.csv")["anomaly_score"].to_numpy()
    prefix = pd.read_csv(tmp_path / "prefix.out.csv")["anomaly_score"].to_numpy()
    np.testing.assert_array_equal(prefix, whole[:1010])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,value\n2014-01-01 00:00:00,1\n", "missing ['timestamp']"),
        ("timestamp,value\n", "no rows"),
        ("timestamp,value\n2014-01-01 00:00:00,\n2014-01-01 00:05:00,x\n", "every value"),
    ],
)
def test_a_file_that_is_no_series_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    (tmp_path / "bad.csv").write_text(text)
    code = main(
        [
            "score-series",
            "--input",
            str(tmp_path / "bad.csv"),
            "--output",
            str(tmp_path / "out.csv"),
        ]
    )
    assert code == 2
    assert message in " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "out.csv").exists()


def test_glitched_rows_are_scored_in_place_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clock that steps back, a garbled timestamp and a value that is no number each cost
    their row nothing but a note: every row is scored, the rest as without the glitch."""
    src = _write(tmp_path / "in.csv", n=1200, jump_at=1000)
    glitched = src.astype({"value": object})
    glitched.loc[300, "timestamp"] = "2014-02-14 14:00:00"  # steps back an hour and more
    glitched.loc[400, "timestamp"] = "yesterday"
    glitched.loc[500, "value"] = "n/a?"
    glitched.to_csv(tmp_path / "glitched.csv", index=False)
    args = ["score-series", "--output"]
    assert main([*args, str(tmp_path / "clean.out.csv"), "--input", str(tmp_path / "in.csv")]) == 0
    capsys.readouterr()
    assert main([*args, str(tmp_path / "out.csv"), "--input", str(tmp_path / "glitched.csv")]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "(timestamp before an earlier row): row 302" in said
    assert "(timestamp not a date): row 402" in said and "(value not a number): row 502" in said
    out = pd.read_csv(tmp_path / "out.csv", dtype={"timestamp": str})
    clean = pd.read_csv(tmp_path / "clean.out.csv")
    assert len(out) == len(src) and out["timestamp"].iloc[400] == "yesterday"
    assert out["anomaly_score"].notna().all()
    assert out["anomaly_score"].iloc[1000:1020].max() >= 0.5, "the jump is still found"
    np.testing.assert_array_equal(out["anomaly_score"][:500], clean["anomaly_score"][:500])


@settings(max_examples=25, deadline=None)
@given(
    glitches=st.lists(
        st.tuples(
            st.integers(0, 299),
            st.sampled_from(["back", "repeat", "blank_time", "garbled", "blank", "word"]),
        ),
        max_size=12,
    )
)
def test_any_glitches_leave_every_row_scored(
    tmp_path_factory: pytest.TempPathFactory,
    glitches: list[tuple[int, str]],
) -> None:
    """Fuzz: whatever rows glitch, and however, the output has one finite score in [0, 1]
    per input row, in the input's order."""
    tmp = tmp_path_factory.mktemp("fuzz")
    frame = _write(tmp / "in.csv", n=300, jump_at=250).astype(str)
    for row, kind in glitches:
        if kind == "back":
            frame.loc[row, "timestamp"] = "2000-01-01 00:00:00"
        elif kind == "repeat":
            frame.loc[row, "timestamp"] = frame.loc[max(row - 1, 0), "timestamp"]
        elif kind == "blank_time":
            frame.loc[row, "timestamp"] = ""
        elif kind == "garbled":
            frame.loc[row, "timestamp"] = "2014-13-45 99:99"
        elif kind == "blank":
            frame.loc[row, "value"] = ""
        else:
            frame.loc[row, "value"] = "oops"
    frame.to_csv(tmp / "g.csv", index=False)
    code = main(["score-series", "--input", str(tmp / "g.csv"), "--output", str(tmp / "o.csv")])
    assert code == 0
    out = pd.read_csv(tmp / "o.csv", keep_default_na=False, dtype=str)
    assert len(out) == 300
    assert list(out["timestamp"]) == list(frame["timestamp"])
    scores = out["anomaly_score"].astype(float)
    assert np.isfinite(scores).all() and scores.between(0, 1).all()


def test_forecast_series_writes_rolling_forecasts_with_intervals(tmp_path: Path) -> None:
    n = 6 * 288  # six days of 5-minute data
    t = np.arange(n)
    values = 100 + 20 * np.sin(2 * np.pi * t / 288) + np.random.default_rng(2).normal(0, 1, n)
    stamps = pd.date_range("2015-02-26 21:42:53", periods=n, freq="5min")
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(
        tmp_path / "in.csv", index=False
    )
    code = main(
        [
            "forecast-series",
            "--input",
            str(tmp_path / "in.csv"),
            "--horizon",
            "12",
            "--output",
            str(tmp_path / "out.csv"),
            "--model",
            "seasonal_naive",
        ]
    )
    assert code == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["timestamp", "value", "forecast", "lower", "upper"]
    warmup = 3 * 288  # three days > 30 % of six
    assert out["timestamp"].iloc[0] == stamps[warmup].strftime("%Y-%m-%d %H:%M:%S")
    assert len(out) == (n - warmup) // 12 * 12
    assert (out["lower"] <= out["forecast"]).all() and (out["forecast"] <= out["upper"]).all()
    inside = ((out["value"] >= out["lower"]) & (out["value"] <= out["upper"])).mean()
    assert 0.6 < inside < 0.97


def test_forecast_series_refuses_a_series_too_short_or_a_bad_horizon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "in.csv", n=30, jump_at=20)
    args = [
        "forecast-series",
        "--input",
        str(tmp_path / "in.csv"),
        "--output",
        str(tmp_path / "out.csv"),
        "--model",
        "seasonal_naive",
    ]
    assert main([*args, "--horizon", "0"]) == 2
    assert "--horizon must be a positive number" in capsys.readouterr().out
    assert main([*args, "--horizon", "12"]) == 2
    assert "warm-up" in " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "out.csv").exists()


def test_a_repeated_timestamp_stays_its_own_row(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.csv", n=300, jump_at=250)
    doubled = pd.concat([src.iloc[:200], src.iloc[199:]], ignore_index=True)
    doubled.to_csv(tmp_path / "dup.csv", index=False)
    assert (
        main(
            [
                "score-series",
                "--input",
                str(tmp_path / "dup.csv"),
                "--output",
                str(tmp_path / "out.csv"),
            ]
        )
        == 0
    )
    out = pd.read_csv(tmp_path / "out.csv", dtype={"timestamp": str})
    assert len(out) == 301 and out["timestamp"].iloc[199] == out["timestamp"].iloc[200]


@pytest.mark.parametrize(
    ("first", "second", "read"),
    [
        ("Dec 5 2026 10:00am", "2026-12-05 10:01", ["2026-12-05 10:00", "2026-12-05 10:01"]),
        ("2026-12-05T10:00Z", "2026-12-05T11:01+01:00", ["2026-12-05 10:00Z", "2026-12-05 10:01Z"]),
        ("2026-12-05T10:00Z", "2026-12-05 10:01", ["2026-12-05 10:00Z", None]),
        ("2026-12-05 10:00", "2026-12-05T10:01Z", ["2026-12-05 10:00", None]),
    ],
)
def test_dates_in_other_formats_and_zones_are_read_or_named_without_a_library_warning(
    tmp_path: Path, first: str, second: str, read: list[str | None]
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(f"timestamp,value\n{first},1\n{second},2\nnot a date,3\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = read_series(path, lenient=True)
    want = [pd.NaT if r is None else pd.Timestamp(r) for r in read] + [pd.NaT]
    assert frame["timestamp"].tolist() == want
    assert frame.attrs["glitches"]["timestamp not a date"] == [
        i + 2 for i, t in enumerate(want) if t is pd.NaT
    ]


def test_forecast_series_auto_weighs_every_model_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 5 * 288
    rng = np.random.default_rng(5)
    walk = 100 + np.cumsum(rng.normal(0, 1, n))  # a random walk: the last value wins
    stamps = pd.date_range("2015-02-26 21:40:00", periods=n, freq="5min")
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": walk}).to_csv(
        tmp_path / "in.csv", index=False
    )
    args = ["forecast-series", "--input", str(tmp_path / "in.csv"), "--horizon", "12"]
    assert main([*args, "--output", str(tmp_path / "out.csv")]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert all(m in printed for m in ("lstm", "ets", "seasonal_naive", "naive"))
    assert "by combined" in printed
    out = pd.read_csv(tmp_path / "out.csv")
    inside = ((out["value"] >= out["lower"]) & (out["value"] <= out["upper"])).mean()
    assert 0.6 < inside < 0.97
    seasonal = tmp_path / "snaive.csv"
    assert main([*args, "--output", str(seasonal), "--model", "seasonal_naive"]) == 0
    error = (out["value"] - out["forecast"]).abs().mean()
    assert error < (pd.read_csv(seasonal).eval("value - forecast").abs().mean()) * 0.8


def test_forecast_series_keeps_going_through_glitch_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 5 * 288
    t = np.arange(n)
    values = 100 + 20 * np.sin(2 * np.pi * t / 288)
    stamps = pd.date_range("2015-02-26 21:40:00", periods=n, freq="5min")
    frame = pd.DataFrame(
        {"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values.round(3).astype(str)}
    )
    frame.loc[1200, "timestamp"] = "not a date"
    frame.loc[1300, "timestamp"] = frame.loc[1290, "timestamp"]  # steps back once
    frame.loc[1350, "value"] = "oops"
    frame.to_csv(tmp_path / "in.csv", index=False)
    args = ["forecast-series", "--input", str(tmp_path / "in.csv"), "--horizon", "12"]
    out_path = tmp_path / "out.csv"
    assert main([*args, "--output", str(out_path), "--model", "seasonal_naive"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "forecast despite a glitch (timestamp not a date): row 1202" in printed
    assert "(timestamp before an earlier row): row 1302" in printed
    assert "(value not a number): row 1352" in printed
    out = pd.read_csv(out_path, keep_default_na=False)
    warmup = 3 * 288
    assert len(out) == (n - warmup) // 12 * 12  # every forecast row, the glitches among them
    assert "not a date" in set(out["timestamp"])
    assert np.isfinite(out["forecast"].astype(float)).all()


@pytest.mark.parametrize(
    "command", [["score-series"], ["forecast-series", "--horizon", "12", "--model", "naive"]]
)
def test_paths_that_cannot_be_read_or_written_exit_2_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    _write(tmp_path / "in.csv")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "gone" / "out.csv")
    cases = {
        ("folder", "out.csv"): "folder: cannot read it",
        ("in.csv", "folder"): "--output: " + str(tmp_path / "folder is a folder, not a file"),
        ("in.csv", "file/out.csv"): "--output: cannot create " + str(tmp_path / "file:"),
        ("in.csv", "dangling.csv"): "dangling.csv: cannot write it",
    }
    for (source, target), message in cases.items():
        args = ["--input", str(tmp_path / source), "--output", str(tmp_path / target)]
        assert main([*command, *args]) == 2, (source, target)
        assert message in " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "gone").exists()
