"""``ooda demo`` survives a worker that dies: its run is played again in the demo's process."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import pytest

from ooda._demo import loop_on_result


def test_a_run_whose_worker_died_is_played_here_and_said() -> None:
    said: list[str] = []
    replayed: list[Any] = []

    def replay() -> Any:  # a stand-in for the Run played here
        replayed.append("run")
        return "the run"

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        # A stand-in for a Run's future (loop_on_result takes only Runs).
        died: Future[Any] = pool.submit(os._exit, 9)  # as the kernel's OOM killer ends a worker
        run: Any = loop_on_result(died, replay, said.append)
    assert run == "the run" and replayed == ["run"]
    assert len(said) == 1 and "worker died" in said[0]


def test_a_run_that_failed_in_its_worker_is_not_played_again() -> None:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        failed: Future[Any] = pool.submit(int, "not a number")  # a stand-in, as above
        with pytest.raises(ValueError, match="not a number"):
            loop_on_result(failed, lambda: pytest.fail("replayed"), lambda _: None)
