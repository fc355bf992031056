"""Where the control-plane binaries live, and building them on first use.

``lab/k8s/build.sh`` builds kube-apiserver, kube-controller-manager, kube-scheduler, etcd, KWOK
and helm from the Go module proxy into ``~/.cache/ooda/k8s/<version>/bin``, and copies KubeRay's
CRDs out of its Go module into ``crds/`` beside it; it is a no-op when they are already there,
so calling :func:`ensure_binaries` is cheap after the first time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lab.k8s._errors import BinariesMissingError

KUBE_VERSION = "v1.34.3"
"""The pinned Kubernetes release (etcd v3.6.4 and KWOK v0.8.0 go with it)."""

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "helm")
CRDS = ("ray.io_rayservices.yaml",)
"""KubeRay's CustomResourceDefinitions the build copies (the chart's RayService needs one)."""
BUILD_SCRIPT = Path(__file__).with_name("build.sh")


def cache_dir(version: str = KUBE_VERSION) -> Path:
    """``$OODA_K8S_CACHE/<version>`` (default ``~/.cache/ooda/k8s/<version>``)."""
    root = os.environ.get("OODA_K8S_CACHE") or str(Path.home() / ".cache" / "ooda" / "k8s")
    return Path(root) / version


def missing_binaries(version: str = KUBE_VERSION) -> list[str]:
    """Names of the binaries not (yet) built for ``version``."""
    bin_dir = cache_dir(version) / "bin"
    crd_dir = cache_dir(version) / "crds"
    return [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)] + [
        c for c in CRDS if not (crd_dir / c).is_file()
    ]


def ensure_binaries(version: str = KUBE_VERSION, *, build: bool = True) -> Path:
    """The directory holding every binary; build the missing ones first when ``build``."""
    missing = missing_binaries(version)
    if missing and build:
        if shutil.which("go") is None:
            raise BinariesMissingError(
                f"{', '.join(missing)} not in {cache_dir(version)}, and no Go toolchain to build"
                " them with"
            )
        env = {**os.environ, "OODA_KUBE_VERSION": version}
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise BinariesMissingError(
                f"{BUILD_SCRIPT} failed with exit code {result.returncode}:\n{tail}"
            )
        missing = missing_binaries(version)
    if missing:
        raise BinariesMissingError(
            f"{', '.join(missing)} not in {cache_dir(version) / 'bin'}; run {BUILD_SCRIPT}"
        )
    return cache_dir(version) / "bin"
