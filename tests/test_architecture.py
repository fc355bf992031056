"""Layers point one way (DESIGN.md), and every package says what it exports."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("contracts", "lab", "features", "models", "training", "serving", "actuators", "ooda")


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_has_an_explicit_public_api(name: str) -> None:
    package = importlib.import_module(name)
    exported = package.__all__
    assert exported, name
    missing = [symbol for symbol in exported if not hasattr(package, symbol)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
    assert package.__doc__ and "Error" in package.__doc__, f"{name} draws no exception tree"
