"""Root-cause ranking over the call graph (``ooda._rca``) and ``ooda rca`` on PetShop's file
formats: the deepest anomalous component first, a bystander not blamed, nothing on a normal
window, cycles and unobserved components handled, and bad input named with exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ooda._errors import RcaInputError
from ooda._rca import RcaSettings, rank_causes

REPO = Path(__file__).resolve().parents[2]
PETSHOP = REPO.parent / "shared" / "data" / "petshop" / "low_traffic"
CALLS = {
    # frontend's own view of checkout's load balancer: an address, not a component
    "frontend": ["checkout", "catalog", "checkout.example.com_remote"],
    "checkout": ["payments"],
    "catalog": [],
    "payments": ["payments-db"],
    "payments-db": [],
    "checkout.example.com_remote": [],
}


def _windows(rises: dict[str, float], seed: int = 5, steps: int = 6, onset: int = 2):
    """Normal latency (288 steps) and an abnormal window in which each named component's
    latency rises by its amount (standard deviations of 1) from ``onset``."""
    rng = np.random.default_rng(seed)
    names = list(CALLS)
    normal = pd.DataFrame(rng.normal(100, 1, size=(288, len(names))), columns=names)
    abnormal = pd.DataFrame(rng.normal(100, 1, size=(steps, len(names))), columns=names)
    for name, rise in rises.items():
        abnormal.loc[onset:, name] += rise
    return normal, abnormal


def test_a_cause_two_hops_down_ranks_first_above_the_callers_it_slows() -> None:
    """The database is slow; payments calls it many times per request, so payments and
    checkout look worse than it does (amplification), yet it explains them."""
    normal, abnormal = _windows(
        {"payments-db": 40, "payments": 120, "checkout": 90, "frontend": 60}
    )
    causes = rank_causes(CALLS, abnormal, "frontend", direction="up", normal=normal)
    assert [c.node for c in causes][:3] == ["payments-db", "payments", "checkout"]
    assert causes[0].path == ("frontend", "checkout", "payments", "payments-db")
    assert causes[1].explained_by == "payments-db"


def test_a_barely_anomalous_callee_is_a_bystander() -> None:
    normal, abnormal = _windows({"checkout": 60, "frontend": 40, "payments": 4})
    causes = rank_causes(CALLS, abnormal, "frontend", direction="up", normal=normal)
    assert causes[0].node == "checkout"


def test_an_address_ranks_after_the_component_it_mirrors() -> None:
    """The caller's view of an address amplifies what the component behind it suffers."""
    normal, abnormal = _windows({"checkout.example.com_remote": 80, "checkout": 50, "frontend": 40})
    names = [
        c.node for c in rank_causes(CALLS, abnormal, "frontend", direction="up", normal=normal)
    ]
    assert names.index("checkout") < names.index("checkout.example.com_remote")


def test_nothing_is_ranked_unless_the_symptom_persists() -> None:
    normal, abnormal = _windows({"payments": 50})  # the target itself is calm
    assert rank_causes(CALLS, abnormal, "frontend", direction="up", normal=normal) == []
    normal, abnormal = _windows({})
    abnormal.loc[3, ["frontend", "checkout"]] += 50  # one noisy step
    assert rank_causes(CALLS, abnormal, "frontend", direction="up", normal=normal) == []
    one_step = rank_causes(
        CALLS, abnormal, "frontend", direction="up", normal=normal,
        settings=RcaSettings(persistence=1),
    )  # fmt: skip
    assert one_step and one_step[0].node == "checkout"


def test_availability_counts_only_drops() -> None:
    names = list(CALLS)
    normal = pd.DataFrame(100.0, index=range(100), columns=names)
    normal.iloc[::5] = 99.5  # at 100 % most of the time: no MAD
    abnormal = pd.DataFrame(100.0, index=range(5), columns=names)
    sick = ["frontend", "checkout", "payments"]
    abnormal.loc[2:, sick] = 96.0
    down = rank_causes(CALLS, abnormal, "frontend", direction="down", normal=normal)
    assert down[0].node == "payments" and {c.node for c in down} == set(sick)
    abnormal.loc[2:, sick] = 100.0
    abnormal.loc[2:, "frontend"] = 100.0 + 4.0  # better than normal is no symptom
    assert rank_causes(CALLS, abnormal, "frontend", direction="down", normal=normal) == []


def test_a_cycle_and_an_unobserved_component_are_walked_once() -> None:
    calls = {"a": ["b"], "b": ["c", "a"], "c": ["d"], "d": []}
    rng = np.random.default_rng(1)
    normal = pd.DataFrame(rng.normal(10, 1, size=(100, 3)), columns=["a", "b", "d"])
    abnormal = pd.DataFrame(rng.normal(10, 1, size=(5, 3)), columns=["a", "b", "d"])
    abnormal.loc[1:, ["a", "b", "d"]] += 30
    causes = rank_causes(calls, abnormal, "a", direction="up", normal=normal)
    assert causes[0].node == "d" and causes[0].path == ("a", "b", "c", "d")  # c has no data


@pytest.mark.parametrize(
    ("target", "abnormal", "message"),
    [
        ("nope", pd.DataFrame({"frontend": [1.0]}), "not a node of the graph"),
        ("catalog", pd.DataFrame({"frontend": [1.0]}), "no column"),
        ("frontend", pd.DataFrame({"frontend": [np.nan, np.nan]}), "empty or all NaN"),
    ],
)
def test_bad_input_is_named(target: str, abnormal: pd.DataFrame, message: str) -> None:
    with pytest.raises(RcaInputError, match=message):
        rank_causes(CALLS, abnormal, target, direction="up")


# -- ooda rca on PetShop's file formats -------------------------------------------------------


def _write_petshop(folder: Path, frame: pd.DataFrame, metric: str = "latency") -> Path:
    columns = pd.MultiIndex.from_tuples(
        [(c, metric, "Average") for c in frame.columns],
        names=["microservice", "metric", "statistic"],
    )
    out = pd.DataFrame(frame.to_numpy(), columns=columns)
    out.index = pd.Index(1_692_608_400.0 + 300.0 * np.arange(len(frame)), name="unix_timestamp")
    path = folder / "metrics.csv"
    folder.mkdir(parents=True, exist_ok=True)
    out.to_csv(path)
    return path


def _write_graph(path: Path, calls: dict[str, list[str]]) -> Path:
    names = list(calls)
    matrix = pd.DataFrame(0.0, index=names, columns=names)
    for caller, callees in calls.items():
        matrix.loc[caller, callees] = 1.0
    matrix.to_csv(path)
    return path


def _rca(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ooda.cli", "rca", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_ooda_rca_writes_the_ranking_best_first(tmp_path: Path) -> None:
    normal, abnormal = _windows(
        {"payments-db": 40, "payments": 120, "checkout": 90, "frontend": 60}
    )
    graph = _write_graph(tmp_path / "graph.csv", CALLS)
    bad = _write_petshop(tmp_path / "issue", abnormal)
    good = _write_petshop(tmp_path / "noissue", normal)
    out = tmp_path / "ranking.csv"
    run = _rca("--graph", str(graph), "--abnormal", str(bad), "--normal", str(good),
               "--target-node", "frontend", "--target-metric", "latency",
               "--target-statistic", "Average", "--output", str(out))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    ranking = pd.read_csv(out)
    assert list(ranking.columns) == ["node", "score"]
    assert ranking.node.iloc[0] == "payments-db" and ranking.score.is_monotonic_decreasing
    calm = _write_petshop(tmp_path / "calm", _windows({})[1])
    run = _rca("--graph", str(graph), "--abnormal", str(calm), "--normal", str(good),
               "--target-node", "frontend", "--target-metric", "latency",
               "--output", str(out))  # fmt: skip
    assert run.returncode == 0 and pd.read_csv(out).empty  # no root cause found


def test_ooda_rca_answers_a_symptom_of_one_step_unless_asked_for_two(tmp_path: Path) -> None:
    """A person runs ``ooda rca`` about a symptom they saw: one step of it is enough by
    default; ``--persistence 2`` answers only for a symptom that held two steps."""
    normal, abnormal = _windows({})
    abnormal.loc[3, ["frontend", "checkout"]] += 50
    graph = _write_graph(tmp_path / "graph.csv", CALLS)
    bad = _write_petshop(tmp_path / "issue", abnormal)
    good = _write_petshop(tmp_path / "noissue", normal)
    out = tmp_path / "ranking.csv"
    common = ["--graph", str(graph), "--abnormal", str(bad), "--normal", str(good),
              "--target-node", "frontend", "--target-metric", "latency",
              "--output", str(out)]  # fmt: skip
    run = _rca(*common)
    assert run.returncode == 0, run.stdout + run.stderr
    assert pd.read_csv(out).node.iloc[0] == "checkout"
    run = _rca(*common, "--persistence", "2")
    assert run.returncode == 0 and pd.read_csv(out).empty, run.stdout
    for bad_value in (["--persistence", "0"], ["--threshold", "-1"], ["--threshold", "x"]):
        run = _rca(*common, *bad_value)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert bad_value[0] in run.stderr


def test_ooda_rca_exits_2_naming_what_is_wrong(tmp_path: Path) -> None:
    graph = _write_graph(tmp_path / "graph.csv", CALLS)
    bad = _write_petshop(tmp_path / "issue", _windows({"frontend": 50})[1])
    other = _write_graph(tmp_path / "other.csv", {"x": ["y"], "y": []})
    square = tmp_path / "square.csv"
    square.write_text(",a,b\na,0,1\nc,0,0\n")
    cases = {
        "not a node of the graph": ["--graph", str(graph), "--target-node", "nope"],
        "none of its components is in the graph": ["--graph", str(other), "--target-node", "x"],
        "not an adjacency matrix": ["--graph", str(square), "--target-node", "a"],
        "cannot read the graph": ["--graph", str(tmp_path / "absent.csv"), "--target-node", "a"],
    }
    for message, args in cases.items():
        run = _rca(*args, "--abnormal", str(bad), "--target-metric", "latency",
                   "--output", str(tmp_path / "r.csv"))  # fmt: skip
        assert run.returncode == 2 and message in run.stdout, (message, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr


def _windows_case(case: str, tmp_path: Path) -> tuple[list[str], str]:
    """Arguments of ``ooda rca`` for one bad window, and what its message must say."""
    normal, abnormal = _windows({"frontend": 50})
    if case == "empty abnormal":
        abnormal = abnormal.iloc[:0]
    elif case == "all-NaN abnormal":
        abnormal.loc[:, :] = np.nan
    elif case == "all-NaN target":
        abnormal["frontend"] = np.nan
    elif case == "no target column":
        abnormal = abnormal.drop(columns="frontend")
    elif case == "all-NaN normal":
        normal.loc[:, :] = np.nan
    elif case == "empty normal":
        normal = normal.iloc[:0]
    bad = _write_petshop(tmp_path / "issue", abnormal)
    good = _write_petshop(tmp_path / "noissue", normal)
    named = str(good) if case.split()[-1] == "normal" else str(bad)
    args = ["rca", "--graph", str(_write_graph(tmp_path / "graph.csv", CALLS)),
            "--abnormal", str(bad), "--normal", str(good), "--target-node", "frontend",
            "--target-metric", "latency", "--output", str(tmp_path / "r.csv")]  # fmt: skip
    return args, named


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty abnormal", "no rows of latency/Average"),
        ("all-NaN abnormal", "every latency/Average value is NaN"),
        ("all-NaN target", "the target's column 'frontend'"),
        ("no target column", "no column for the target 'frontend'"),
        ("all-NaN normal", "every latency/Average value is NaN"),
        ("empty normal", "no rows of latency/Average"),
    ],
)
def test_ooda_rca_names_the_file_of_an_empty_or_blank_window(
    case: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ooda.cli import main

    args, named = _windows_case(case, tmp_path)
    assert main(args) == 2
    said = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert message in said and named in said.replace(" ", ""), said


def test_ooda_rca_names_the_components_it_leaves_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A component the graph does not have is named and left out; the rest is ranked."""
    from ooda.cli import main

    normal, abnormal = _windows(
        {"payments-db": 40, "payments": 120, "checkout": 90, "frontend": 60}
    )
    abnormal["billing"] = normal["billing"] = 100.0
    bad = _write_petshop(tmp_path / "issue", abnormal)
    good = _write_petshop(tmp_path / "noissue", normal)
    out = tmp_path / "r.csv"
    args = ["rca", "--graph", str(_write_graph(tmp_path / "graph.csv", CALLS)),
            "--abnormal", str(bad), "--normal", str(good), "--target-node", "frontend",
            "--target-metric", "latency", "--output", str(out)]  # fmt: skip
    assert main(args) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "not in the graph, left out of the ranking: billing" in said, said
    ranking = pd.read_csv(out)
    assert ranking.node.iloc[0] == "payments-db" and "billing" not in set(ranking.node)


@pytest.mark.skipif(not PETSHOP.is_dir(), reason="no PetShop data beside this checkout")
def test_ooda_rca_reads_petshops_own_files(tmp_path: Path) -> None:
    issue = PETSHOP / "train" / "issue_0"
    out = tmp_path / "ranking.csv"
    run = _rca("--graph", str(PETSHOP / "graph.csv"), "--abnormal", str(issue / "metrics.csv"),
               "--normal", str(PETSHOP / "noissue" / "metrics.csv"), "--target-node", "PetSite",
               "--target-metric", "latency", "--output", str(out))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    ranking = pd.read_csv(out)
    assert not ranking.empty and set(ranking.node) <= set(
        pd.read_csv(PETSHOP / "graph.csv", index_col=0).index
    )
