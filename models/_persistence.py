"""The on-disk layout shared by every model: a directory with a `manifest.json`.

A manifest naming the model class lets one loader (`load_model`) and the MLflow pyfunc
wrappers open any saved model without knowing its class in advance, and makes a mismatch
(loading a detector as a forecaster) an explicit error instead of an unpickling surprise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import joblib

from models._errors import ModelFileError

MANIFEST = "manifest.json"
#: Bumped when a saved layout changes incompatibly.
FORMAT_VERSION = 1


def write_manifest(path: Path, kind: str, **extra: Any) -> None:
    """Create `path` (a directory) and write its manifest."""
    path.mkdir(parents=True, exist_ok=True)
    body = {"kind": kind, "format_version": FORMAT_VERSION, **extra}
    (path / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True))


def read_manifest(path: Path, expected_kind: str | None = None) -> dict[str, Any]:
    """Read the manifest of a saved model, checking its kind when `expected_kind` is given."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise ModelFileError(f"no saved model at {str(path)!r}: {MANIFEST} not found")
    manifest: dict[str, Any] = json.loads(file.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"saved model at {str(path)!r} has format_version "
            f"{manifest.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    if expected_kind is not None and manifest.get("kind") != expected_kind:
        raise ModelFileError(
            f"saved model at {str(path)!r} is a {manifest.get('kind')!r}, not a {expected_kind!r}"
        )
    return manifest


T = TypeVar("T")


def dump_pickled(model: object, path: Path, file_name: str, **manifest: Any) -> None:
    """Write `model` with joblib into directory `path`, beside a manifest naming its class."""
    write_manifest(path, type(model).__name__, **manifest)
    joblib.dump(model, path / file_name)


def load_pickled(cls: type[T], path: Path, file_name: str) -> T:
    """Read a model written by `dump_pickled`, refusing one of another class."""
    read_manifest(path, expected_kind=cls.__name__)
    model = joblib.load(path / file_name)
    if not isinstance(model, cls):
        raise ModelFileError(f"{str(path)!r} holds a {type(model).__name__}, not {cls.__name__}")
    return model
