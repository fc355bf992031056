"""Orient: the estate as components with signals, ranked for the root cause of a symptom.

A service's metric families already say what it depends on: its rows in the database family
name its RDS instances, the Kafka family its topics, the queue family its queues, the
upstream family the APIs it calls, the pod family the nodes its pods run on. So the graph
the ranking walks is the services' call graph plus, for each service, those components; and
each component is judged on its own signals (a database on its read and write latency and
replica lag, a node on Ready, DiskPressure and retransmissions, a service on its p95, errors
and memory), each in the direction that hurts, the worst signal kept
(:func:`ooda._rca.rank_from_z` then ranks them). Nothing here is tied to the lab: the same
frames come from Prometheus on a real estate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from contracts import MetricFamily
from ooda._rca import Cause, Direction, RcaSettings, rank_from_z, robust_z
from ooda._records import ComponentKind, Orientation, RootCause

#: Components are judged on several kinds of signal here: scores are clipped to compare.
ESTATE_RCA = RcaSettings(max_z=1000.0)


@dataclass(frozen=True)
class Signal:
    """One column of a frame that says something about a component's health."""

    column: str
    direction: Direction
    total: bool = False
    """Sum the rows of one component at one time (Kafka lag over partitions); else the worst."""


SERVICE_SIGNALS = (
    Signal("p95_latency_ms", "up"),
    Signal("error_rate", "up"),
    Signal("memory_utilisation", "up"),
)
#: What a service's family rows say about the service itself: its consumers' freshness.
SERVICE_FAMILY_SIGNALS: dict[MetricFamily, tuple[Signal, ...]] = {
    MetricFamily.KAFKA: (Signal("kafka_consumergroup_lag", "up", total=True),),
    MetricFamily.QUEUE: (
        Signal("aws_sqs_approximate_age_of_oldest_message_average", "up"),
        Signal("aws_sqs_approximate_number_of_messages_visible_average", "up", total=True),
    ),
}
#: Per family: the column naming the component, and its signals.
FAMILY_SIGNALS: dict[MetricFamily, tuple[str, tuple[Signal, ...]]] = {
    MetricFamily.DATABASE: (
        "dbinstance_identifier",
        (
            Signal("aws_rds_read_latency_average", "up"),
            Signal("aws_rds_write_latency_average", "up"),
            Signal("aws_rds_replica_lag_average", "up"),
        ),
    ),
    MetricFamily.KAFKA: ("topic", (Signal("kafka_consumergroup_lag", "up", total=True),)),
    MetricFamily.QUEUE: (
        "queue_name",
        (
            Signal("aws_sqs_approximate_number_of_messages_visible_average", "up"),
            Signal("aws_sqs_approximate_age_of_oldest_message_average", "up"),
        ),
    ),
    MetricFamily.UPSTREAM: (
        "upstream",
        (
            Signal("http_client_requests_throttled_rate", "up"),
            Signal("http_client_request_duration_p95_ms", "up"),
        ),
    ),
    MetricFamily.NODE: (
        "node",
        (
            Signal("kube_node_status_condition_ready", "down"),
            Signal("kube_node_status_condition_disk_pressure", "up"),
            Signal("node_filesystem_avail_bytes", "down"),
            Signal("node_netstat_TcpExt_TCPRetransSegs_rate", "up"),
        ),
    ),
}


#: The kind of the components each family's key names.
FAMILY_KINDS: dict[MetricFamily, ComponentKind] = {
    MetricFamily.DATABASE: ComponentKind.DATABASE,
    MetricFamily.KAFKA: ComponentKind.TOPIC,
    MetricFamily.QUEUE: ComponentKind.QUEUE,
    MetricFamily.UPSTREAM: ComponentKind.UPSTREAM,
    MetricFamily.NODE: ComponentKind.NODE,
}


def component_kinds(
    service_calls: Mapping[str, Sequence[str]],
    families: Mapping[MetricFamily, pd.DataFrame],
) -> dict[str, ComponentKind]:
    """What each component the families name is; a service keeps its kind on a name clash."""
    kinds: dict[str, ComponentKind] = {}
    for family, (key, _) in FAMILY_SIGNALS.items():
        frame = families.get(family)
        if frame is not None and key in frame.columns:
            kinds.update(
                dict.fromkeys(map(str, frame[key].dropna().unique()), FAMILY_KINDS[family])
            )
    pods = families.get(MetricFamily.POD)
    if pods is not None and "node" in pods.columns:
        kinds.update(dict.fromkeys(map(str, pods["node"].dropna().unique()), ComponentKind.NODE))
    for service, callees in service_calls.items():
        kinds.update(dict.fromkeys([service, *callees], ComponentKind.SERVICE))
    return kinds


def estate_graph(
    service_calls: Mapping[str, Sequence[str]],
    families: Mapping[MetricFamily, pd.DataFrame],
) -> dict[str, list[str]]:
    """Each component and what it depends on: services call services, and use the
    components their family rows name (the nodes their pods ran on included)."""
    graph: dict[str, list[str]] = {s: list(callees) for s, callees in service_calls.items()}
    uses: list[tuple[str, str]] = []
    for family, (key, _) in FAMILY_SIGNALS.items():
        frame = families.get(family)
        if frame is not None and "service" in frame.columns and not frame.empty:
            uses += list(frame[["service", key]].drop_duplicates().itertuples(index=False))
    pods = families.get(MetricFamily.POD)
    if pods is not None and not pods.empty:
        uses += list(pods[["service", "node"]].dropna().drop_duplicates().itertuples(index=False))
    for service, component in uses:
        service, component = str(service), str(component)
        graph.setdefault(service, [])
        graph.setdefault(component, [])
        if component not in graph[service] and component != service:
            graph[service].append(component)
    return graph


def _pivot(frame: pd.DataFrame, key: str, signal: Signal) -> pd.DataFrame:
    rows = frame[["timestamp", key, signal.column]].dropna(subset=[key])
    table = rows.pivot_table(
        index="timestamp",
        columns=key,
        values=signal.column,
        aggfunc="sum" if signal.total else "max",
    )
    table.columns = [str(c) for c in table.columns]
    return table


def component_z(
    services: pd.DataFrame,
    families: Mapping[MetricFamily, pd.DataFrame],
    normal_until: datetime,
    settings: RcaSettings | None = None,
) -> pd.DataFrame:
    """Per step from ``normal_until`` on, each component's worst robust z-score over its
    signals, judged against the steps before ``normal_until``."""
    s = settings or ESTATE_RCA
    sources: list[tuple[pd.DataFrame, str, Signal]] = [
        (services, "service", sig) for sig in SERVICE_SIGNALS if sig.column in services.columns
    ]
    for family, signals in SERVICE_FAMILY_SIGNALS.items():
        frame = families.get(family)
        if frame is not None and not frame.empty and "service" in frame.columns:
            sources += [(frame, "service", sig) for sig in signals if sig.column in frame.columns]
    for family, (key, signals) in FAMILY_SIGNALS.items():
        frame = families.get(family)
        if frame is not None and not frame.empty:
            sources += [(frame, key, sig) for sig in signals if sig.column in frame.columns]
    scored = []
    cut = pd.Timestamp(normal_until)
    for frame, key, signal in sources:
        table = _pivot(frame, key, signal)
        before, after = table[table.index < cut], table[table.index >= cut]
        if len(before) and len(after):
            scored.append(robust_z(after, before, signal.direction, s))
    if not scored:
        return pd.DataFrame()
    stacked = pd.concat(scored, axis=1)
    return stacked.T.groupby(level=0).max().T


def orient(
    service_calls: Mapping[str, Sequence[str]],
    services: pd.DataFrame,
    families: Mapping[MetricFamily, pd.DataFrame],
    target: str,
    normal_until: datetime,
    settings: RcaSettings | None = None,
) -> list[Cause]:
    """The ranked root causes of ``target``'s symptom after ``normal_until`` (empty: the
    symptom is not there, or nothing explains it)."""
    s = settings or ESTATE_RCA
    z = component_z(services, families, normal_until, s)
    if z.empty:
        return []
    return rank_from_z(estate_graph(service_calls, families), z, target, s)


def orientations(
    service_calls: Mapping[str, Sequence[str]],
    services: pd.DataFrame,
    families: Mapping[MetricFamily, pd.DataFrame],
    symptoms: Mapping[str, str],
    normal_until: datetime,
    settings: RcaSettings | None = None,
) -> dict[str, Orientation]:
    """Per symptomatic service (``symptoms`` maps it to what shows), its ranked causes, each
    with its kind and the services that heal it; the scores are computed once for all."""
    s = settings or ESTATE_RCA
    z = component_z(services, families, normal_until, s)
    graph = estate_graph(service_calls, families)
    kinds = component_kinds(service_calls, families)
    users: dict[str, list[str]] = {}
    for user, deps in graph.items():
        if kinds.get(user) is ComponentKind.SERVICE:
            for dep in deps:
                users.setdefault(dep, []).append(user)

    def owners(node: str, kind: ComponentKind) -> tuple[str, ...]:
        return (node,) if kind is ComponentKind.SERVICE else tuple(sorted(users.get(node, ())))

    out: dict[str, Orientation] = {}
    for target, why in symptoms.items():
        causes = [] if z.empty else rank_from_z(graph, z, target, s)
        ranked = []
        for c in causes:
            kind = kinds.get(c.node, ComponentKind.SERVICE)
            ranked.append(RootCause(c.node, kind, c.score, c.anomaly, c.path, owners(c.node, kind)))
        unranked = ""
        if z.empty:
            unranked = f"no metrics both before and after {normal_until:%H:%M} to judge against"
        elif target not in z.columns or z[target].isna().all():
            unranked = f"no signal of {target} after {normal_until:%H:%M}"
        out[target] = Orientation(target, why, normal_until, tuple(ranked), unranked)
    return out
