"""One scoring call for many loops: the chaos harness runs its instances side by side, each
loop in a thread, and their calls to the models meet here.

A call waits until every running loop is either waiting here too or finished; then one
request per endpoint goes to Ray Serve with every loop's rows (service names prefixed with
the loop's id) and each loop gets its own part back. Twenty instances then cost one HTTP
round trip per scoring minute instead of twenty, and Serve batches the model call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ooda._errors import ScoringUnavailableError
from ooda._records import AnomalyScores, LoadForecast
from ooda._scoring import Scorer

_SEP = "|"


@dataclass
class _Call:
    kind: str
    who: int
    frame: pd.DataFrame
    horizon: int = 0
    result: Any = None
    error: Exception | None = None
    done: bool = False


@dataclass
class BatchingScorer:
    """Gathers the calls of ``parties`` loop threads into one call per endpoint."""

    inner: Scorer
    parties: int = 0
    requests: int = 0
    """HTTP calls made (for the report of what batching saved)."""
    calls: int = 0
    """Calls the loops made."""
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _waiting: list[_Call] = field(default_factory=list)

    def client(self, who: int) -> _Client:
        """The scorer one loop uses."""
        return _Client(self, who)

    def join(self) -> None:
        """A loop thread starts."""
        with self._cond:
            self.parties += 1

    def leave(self) -> None:
        """A loop thread ends; the others may no longer wait for it."""
        with self._cond:
            self.parties -= 1
            self._maybe_flush()

    def submit(self, call: _Call) -> Any:
        with self._cond:
            self.calls += 1
            self._waiting.append(call)
            self._maybe_flush()
            while not call.done:
                self._cond.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def _maybe_flush(self) -> None:
        if not self._waiting or len(self._waiting) < self.parties:
            return
        calls, self._waiting = self._waiting, []
        for kind in ("anomaly", "forecast"):
            mine = [c for c in calls if c.kind == kind]
            if mine:
                self._send(kind, mine)
        self._cond.notify_all()

    def _send(self, kind: str, calls: list[_Call]) -> None:
        frames = []
        for call in calls:
            frame = call.frame.copy()
            frame["service"] = f"{call.who}{_SEP}" + frame["service"].astype(str)
            frames.append(frame)
        both = pd.concat(frames, ignore_index=True)
        self.requests += 1
        try:
            if kind == "anomaly":
                scores = self.inner.anomaly_rows(both)
                for call in calls:
                    prefix = f"{call.who}{_SEP}"
                    mine = {
                        k[len(prefix) :]: v
                        for k, v in scores.scores.items()
                        if k.startswith(prefix)
                    }
                    flags = {
                        k[len(prefix) :]: v
                        for k, v in scores.anomalous.items()
                        if k.startswith(prefix)
                    }
                    call.result = AnomalyScores(scores.model_version, mine, flags)
            else:
                horizon = max(c.horizon for c in calls)
                forecast = self.inner.forecast_history(both, horizon)
                frame = forecast.frame
                for call in calls:
                    prefix = f"{call.who}{_SEP}"
                    rows = frame[frame["service"].astype(str).str.startswith(prefix)].copy()
                    rows["service"] = rows["service"].str[len(prefix) :]
                    call.result = LoadForecast(forecast.model_version, rows.reset_index(drop=True))
        except Exception as exc:  # every waiting loop must wake up, whatever went wrong
            error = (
                exc
                if isinstance(exc, ScoringUnavailableError)
                else ScoringUnavailableError(f"batched {kind} call failed: {exc!r}")
            )
            for call in calls:
                call.error = error
        for call in calls:
            call.done = True


@dataclass
class _Client:
    """One loop's view of a :class:`BatchingScorer`."""

    batcher: BatchingScorer
    who: int

    def anomaly_rows(self, rows: pd.DataFrame) -> AnomalyScores:
        result: AnomalyScores = self.batcher.submit(_Call("anomaly", self.who, rows))
        return result

    def forecast_history(self, history: pd.DataFrame, horizon: int) -> LoadForecast:
        call = _Call("forecast", self.who, history, horizon)
        result: LoadForecast = self.batcher.submit(call)
        return result
