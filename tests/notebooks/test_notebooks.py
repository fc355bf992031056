"""The notebooks run top to bottom, in order, on a short history and a temporary registry.

They share one workspace (``ooda.Workspace``) prepared once for the module: Feast with two
days of lab history, MLflow with both champions, one incident in an audit log. Each is run
by nbclient in a real Jupyter kernel; a cell that raises fails the test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient
from nbclient import NotebookClient

from ooda import Workspace

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ORDER = (
    "01_explore_features.ipynb",
    "02_train_challenger.ipynb",
    "03_compare_and_promote.ipynb",
    "04_incident_walkthrough.ipynb",
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("workspace")
    before = os.environ.get("OODA_WORKSPACE")
    os.environ["OODA_WORKSPACE"] = str(root)  # the kernels inherit it
    try:
        yield Workspace(root).prepare(days=2.0)
    finally:
        if before is None:
            os.environ.pop("OODA_WORKSPACE", None)
        else:
            os.environ["OODA_WORKSPACE"] = before


def run(name: str) -> str:
    """Execute a notebook; its text outputs, joined."""
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    texts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def test_the_notebooks_are_committed_without_outputs() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(ORDER)
    for name in ORDER:
        book = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert book.cells[0].cell_type == "markdown" and "What this is for" in book.cells[0].source
        for cell in book.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name} has outputs"


def test_explore_features_plots_the_history_and_the_detector(workspace: Workspace) -> None:
    out = run(ORDER[0])
    assert f"rows: {len(workspace.settings().services)} services" in out
    assert "champion on the history" in out and "recall" in out


def test_train_challenger_sets_the_challenger_alias(workspace: Workspace) -> None:
    client = MlflowClient(tracking_uri=workspace.tracking_uri, registry_uri=workspace.tracking_uri)
    champion = client.get_model_version_by_alias("ooda-detector", "champion").version
    out = run(ORDER[1])
    assert "gate:" in out
    challenger = client.get_model_version_by_alias("ooda-detector", "challenger")
    assert int(challenger.version) > int(champion)
    assert client.get_model_version_by_alias("ooda-detector", "champion").version == champion


def test_compare_and_promote_moves_the_champion_and_serving_follows(workspace: Workspace) -> None:
    client = MlflowClient(tracking_uri=workspace.tracking_uri, registry_uri=workspace.tracking_uri)
    champion = client.get_model_version_by_alias("ooda-detector", "champion").version
    challenger = client.get_model_version_by_alias("ooda-detector", "challenger").version
    out = run(ORDER[2])
    shadowed = re.search(r"(\d+) rows scored in shadow by v(\d+)", out)
    assert shadowed is not None, out[-2000:]
    assert shadowed.groups() == ("300", str(challenger)), shadowed.group(0)
    assert f"serving before: {champion}" in out
    assert f"serving after promotion: {challenger}" in out
    assert f"champion now v{champion} | serving: {champion}" in out
    tags = client.get_model_version("ooda-detector", challenger).tags
    assert tags["promoted_by"] == "notebook" and tags["rolled_back_by"] == "notebook"


def test_incident_walkthrough_reads_the_audit_log_and_writes_the_page(
    workspace: Workspace,
) -> None:
    out = run(ORDER[3])
    assert "switch_database" in out and "payments-db" in out
    assert (workspace.root / "pages" / "index.html").is_file()
