"""A Serve start that fails leaves nothing behind, so the next start is a fresh one.

A proxy port already taken makes Serve's start fail. Ray must then be shut down: left
up, it keeps the failed start's ports and environment, and a retry on new ports joins it
and never answers on them (a CI run lost its end-to-end tests that way).
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from serving import ServeStartError, ServingSettings, _app, deploy, free_serve_port
from serving._app import proxy_port


def test_a_start_that_cannot_bind_its_proxy_fails_and_shuts_ray_down(tmp_path: Path) -> None:
    settings = ServingSettings(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        feature_data_dir=tmp_path / "features",
        port=free_serve_port(),
        ray_num_cpus=1,
    )
    with socket.socket() as taken:
        taken.bind((settings.host, proxy_port(settings)))
        taken.listen()
        with pytest.raises(ServeStartError, match=str(proxy_port(settings))):
            deploy(settings)
    assert not ray.is_initialized()


def test_free_serve_port_finds_a_whole_free_block_below_the_ephemeral_range() -> None:
    port = free_serve_port()
    low_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert port >= 20_000 and port + 100 < low_ephemeral
    for each in [*range(port, port + 16), port + 100]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", each))


def test_a_block_chosen_by_a_live_process_is_not_chosen_again(tmp_path: Path) -> None:
    """Two test workers (or notebooks) choosing at the same time get blocks that do not
    overlap; a dead process's reservation frees its block."""
    folder = tmp_path / "reservations"
    first = free_serve_port(rng=random.Random(3), reservations=folder)
    again = free_serve_port(rng=random.Random(3), reservations=folder)
    code = (
        "import random, sys; from pathlib import Path; from serving import free_serve_port;"
        " print(free_serve_port(rng=random.Random(3), reservations=Path(sys.argv[1])))"
    )
    other = int(
        subprocess.run(
            [sys.executable, "-c", code, str(folder)], check=True, capture_output=True, text=True
        ).stdout
    )
    blocks = [set(_app_ports(base)) for base in (first, again, other)]
    assert all(a.isdisjoint(b) for a, b in itertools.combinations(blocks, 2)), (first, again)
    dead = subprocess.Popen(["true"])  # a process that has ended: its pid is free
    dead.wait()
    (folder / f"{first}-{os.getpid()}").unlink()
    (folder / f"{first}-{dead.pid}").touch()
    assert free_serve_port(rng=random.Random(3), reservations=folder) == first
    assert not (folder / f"{first}-{dead.pid}").exists()


def _app_ports(base: int) -> list[int]:
    return [*range(base, base + 16), base + 100]


def _settings(tmp_path: Path) -> ServingSettings:
    return ServingSettings(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        feature_data_dir=tmp_path / "features",
        port=free_serve_port(),
    )


def test_a_raylet_too_slow_to_register_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray allows its raylet 30 s to register; on a busy machine a second start makes it."""
    calls: list[str] = []

    def init(**_kwargs: object) -> None:
        calls.append("init")
        if calls.count("init") < 3:
            raise Exception("The current node timed out during startup. This could happen ...")

    monkeypatch.setattr(_app.ray, "init", init)
    monkeypatch.setattr(_app.ray, "shutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(_app._init_ray.retry, "sleep", lambda _s: None)  # type: ignore[attr-defined]
    _app._init_ray(_settings(tmp_path))
    assert calls == ["init", "shutdown", "init", "shutdown", "init"]


def test_ray_that_cannot_start_is_a_serve_start_error_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def init(**_kwargs: object) -> None:
        calls.append("init")
        raise ValueError("num_cpus must be positive")

    monkeypatch.setattr(_app.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(_app.ray, "init", init)
    with pytest.raises(ServeStartError, match="Ray did not start: num_cpus must be positive"):
        deploy(_settings(tmp_path))
    assert calls == ["init"], "not a temporary error: no second start"
