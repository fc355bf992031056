"""Settings of the scoring service, and their conversion from ``serve`` config ``args``.

One frozen dataclass passed explicitly to every deployment (Ray pickles it into each
replica), so a replica never reads the environment or a global to find its registry. The
only place strings become settings is :func:`settings_from_args`, the edge used by
``serve run`` / ``serve deploy`` / KubeRay through :func:`serving.app_builder`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from serving._errors import InvalidSettingsError


@dataclass(frozen=True)
class ServingSettings:
    """Where the models and features live and how the endpoints behave."""

    #: MLflow tracking and registry URI, e.g. ``sqlite:////abs/path/mlruns/mlflow.db``.
    tracking_uri: str
    #: Data directory of the Feast repo (``features.FeatureRepoSettings.data_dir``), absolute.
    feature_data_dir: Path
    #: Interface the HTTP proxy binds to (only used by :func:`serving.start`).
    host: str = "127.0.0.1"
    #: HTTP port of the endpoints (only used by :func:`serving.start`): with
    #: ``direct_ingress`` the ingress replica itself listens here (further replicas on the
    #: next ports), else Serve's proxy does.
    port: int = 8000
    #: Serve's throughput-optimised mode (:func:`serving.start`): the ingress replica
    #: answers HTTP itself, with no proxy hop, and Serve's parts talk gRPC. Through the
    #: proxy a one-row score costs ~9 ms and the path saturates near 100 requests/s on 2
    #: cores; direct, ~1 ms and 500 requests/s.
    direct_ingress: bool = True
    #: Port of Serve's HTTP proxy when ``direct_ingress`` is on (0: ``port + 100``); it
    #: balances over every ingress replica, at the cost of the extra hop.
    proxy_port: int = 0
    #: Seconds between checks of the registry for an alias move.
    poll_interval_s: float = 5.0
    #: Most forecast requests the forecaster scores in one call.
    max_batch_size: int = 32
    #: Longest a forecast request waits for others to fill a batch.
    batch_wait_timeout_s: float = 0.01
    #: Most rows (or services) one anomaly request may carry; more is answered 413.
    max_rows: int = 20_000
    #: Largest request body accepted, in bytes; more is answered 413 unread.
    max_body_bytes: int = 8 * 2**20
    #: Batches up to this many rows are scored on the event loop; longer ones in a thread.
    inline_rows: int = 512
    #: Requests one ingress replica works on at once (Serve's ``max_ongoing_requests``); a
    #: one-row score takes about a millisecond of its event loop, so more buys no throughput.
    max_ongoing_requests: int = 16
    #: Requests waiting for an ingress replica beyond that; more are answered 503 at once.
    #: Kept short, so a request either waits milliseconds or is refused, never times out.
    max_queued_requests: int = 32
    #: Ingress replicas (each holds the detector); with ``direct_ingress`` each listens on
    #: its own port from ``port`` on, and the proxy balances over all of them.
    ingress_replicas: int = 1
    #: Forecaster replicas (each holds the LSTM).
    forecaster_replicas: int = 1
    #: Seconds a stopping replica waits for its requests in flight (Serve's default is
    #: 20 s), and, started by :func:`serving.start`, the direct ingress' draining period (30 s
    #: by default, for an external load balancer, which loopback has not): a score takes
    #: milliseconds, so a short grace makes stopping Serve quick.
    graceful_shutdown_timeout_s: float = 2.0
    #: Registered model of the anomaly detector.
    detector_name: str = "ooda-detector"
    #: Registered model of the load forecaster.
    forecaster_name: str = "ooda-forecaster"
    #: Feast feature service read for ``{"services": [...]}`` anomaly requests.
    detector_features: str = "detector_v2"
    #: Feast feature service read for ``{"services": [...]}`` forecast requests.
    forecaster_features: str = "forecaster_v1"
    #: Alias the endpoints serve.
    alias: str = "champion"
    #: Alias scored in shadow beside it: the same inputs, off the request path, recorded and
    #: never answered with ("" turns shadow scoring off).
    shadow_alias: str = "challenger"
    #: SQLite file of the shadow record ("": ``shadow.db`` in ``feature_data_dir``).
    shadow_path: str = ""
    #: Forward replica logs to the driver's terminal (they are always under /tmp/ray).
    log_to_driver: bool = False
    #: CPUs given to Ray by :func:`serving.start` when it starts Ray itself.
    ray_num_cpus: int = 2
    #: Seconds :func:`serving.start` waits for ``/healthz`` to answer 200.
    start_timeout_s: float = 120.0

    @property
    def shadow_file(self) -> Path:
        """Where the shadow record is written."""
        return Path(self.shadow_path) if self.shadow_path else self.feature_data_dir / "shadow.db"


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": lambda value: str(value).lower() in {"1", "true", "yes"},
    "Path": lambda value: Path(value).resolve(),
}


def settings_from_args(args: Mapping[str, Any], cwd: Path) -> ServingSettings:
    """Settings from ``serve`` config ``args``; the two paths default to the repo layout.

    ``tracking_uri`` defaults to ``sqlite:///<cwd>/mlruns/mlflow.db`` and
    ``feature_data_dir`` to ``<cwd>/features/repo/data``; values are converted to the
    field's type and unknown keys are rejected so that a typo does not go unnoticed.
    """
    known = {field.name: field for field in fields(ServingSettings)}
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise InvalidSettingsError(
            f"unknown serving args {unknown}; expected some of {sorted(known)}"
        )
    values: dict[str, Any] = {
        "tracking_uri": f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}",
        "feature_data_dir": cwd / "features" / "repo" / "data",
    }
    for key, raw in args.items():
        try:
            values[key] = _CONVERTERS[str(known[key].type)](raw)
        except (TypeError, ValueError) as exc:
            raise InvalidSettingsError(f"serving arg {key}={raw!r}: {exc}") from exc
    return ServingSettings(**values)
