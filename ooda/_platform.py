"""The model platform the embedded runs share: lab history -> Feast -> MLflow -> Ray Serve.

``ooda demo`` and ``ooda chaos`` both need trained, registered champions and a running Serve
application; this module is that path, once. Each step is the real thing: Feast's offline
and online stores, MLflow's registry with aliases, Ray Serve over HTTP on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from rich.progress import Progress

import features
import serving
import training
from contracts import MetricFamily, SimClock
from lab import Lab, LabSettings, TopologySettings
from ooda._settings import OodaSettings, ServingClientSettings

if TYPE_CHECKING:
    from feast import FeatureStore

#: Where the live part of the demo begins: a Monday evening, so the traffic surge lands near
#: the daily peak (19:00 UTC), when it hurts most.
LIVE_START = datetime(2026, 11, 16, 17, 30, tzinfo=UTC)


def incidents_of(lab: Lab) -> list[training.Incident]:
    """The lab's recorded ground truth as labelled incidents, per service that felt it."""
    out: list[training.Incident] = []
    for record in lab.ground_truth:
        end = record.ends_at or lab.clock.now()
        out.extend(
            training.Incident(service, record.injected_at, end, str(record.scenario))
            for service in record.felt_by
        )
    return out


def history_lab(settings: OodaSettings, progress: Progress) -> Lab:
    """A lab that has lived ``history_days`` up to :data:`LIVE_START`, with incidents."""
    demo = settings.demo
    estate = LabSettings(seed=demo.seed, topology=TopologySettings(pdb_max_unavailable=1))
    lab = Lab(estate, SimClock(LIVE_START - timedelta(days=demo.history_days)))
    task = progress.add_task(f"simulating {demo.history_days:g} days of history", total=1)
    lab.generate_history(days=demo.history_days)
    progress.update(task, completed=1)
    return lab


def train_models(
    settings: OodaSettings, lab: Lab, progress: Progress
) -> tuple[FeatureStore, list[training.TrainingResult]]:
    """Ingest ``lab``'s history into Feast (services and every metric family), train and
    register both models in MLflow."""
    start = LIVE_START - timedelta(days=settings.demo.history_days)
    end = lab.clock.now()
    history = lab.source.query_range(start, end, timedelta(minutes=1))
    task = progress.add_task("Feast: apply, ingest, materialize", total=1)
    store = features.open_store(features.FeatureRepoSettings(settings.feature_dir.resolve()))
    features.apply(store)
    features.ingest(store, history)
    step = timedelta(minutes=1)
    families = {f: lab.source.query_family(f, start, end, step) for f in MetricFamily}
    features.ingest_families(store, families)
    progress.update(task, completed=1)
    uri = settings.training.registry.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    services = settings.services
    task = progress.add_task("train + register detector", total=1)
    results = [
        training.train_detector(
            store,
            client,
            settings.training,
            start=start,
            end=end,
            services=services,
            incidents=incidents_of(lab),
        )
    ]
    progress.update(task, completed=1)
    task = progress.add_task("train + register LSTM forecaster", total=1)
    results.append(
        training.train_forecaster(
            store, client, settings.training, start=start, end=end, services=services
        )
    )
    progress.update(task, completed=1)
    return store, results


@contextmanager
def serve(settings: OodaSettings, progress: Progress) -> Iterator[ServingClientSettings]:
    """Ray Serve on 127.0.0.1 serving the registry's champions, stopped on exit."""
    with serve_early(settings, progress) as ready:
        yield ready()


@contextmanager
def serve_early(
    settings: OodaSettings, progress: Progress
) -> Iterator[Callable[[], ServingClientSettings]]:
    """Start Ray Serve in the background now, and yield a call that waits until it serves.

    Serve's start (Ray's processes, the replicas' imports) overlaps whatever the caller does
    meanwhile, training included: the replicas follow the registry and load the champions
    once they are registered. Serve is stopped on exit.
    """
    task = progress.add_task("starting Ray Serve", total=1)
    serve_settings = serving.ServingSettings(
        tracking_uri=settings.training.registry.tracking_uri,
        feature_data_dir=settings.feature_dir.resolve(),
        port=settings.demo.serve_port,
    )
    # The tracking store is created here, once, before the replicas and the training both
    # open it: two processes must not create its schema at the same time.
    uri = settings.training.registry.tracking_uri
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models(max_results=1)
    with ThreadPoolExecutor(1, thread_name_prefix="serve-start") as starter:
        deploying = starter.submit(serving.deploy, serve_settings)

        def ready() -> ServingClientSettings:
            serving.wait_healthy(deploying.result(), serve_settings)
            progress.update(task, completed=1)
            return ServingClientSettings(
                base_url=f"http://127.0.0.1:{settings.demo.serve_port}",
                horizon=settings.serving.horizon,
                timeout_s=settings.serving.timeout_s,
            )

        try:
            yield ready
        finally:
            wait([deploying])  # a start still under way is finished before Serve is stopped
            serving.stop()
