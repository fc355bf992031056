"""Start and stop a real Kubernetes control plane with KWOK-simulated nodes on 127.0.0.1.

The processes are ours: etcd, kube-apiserver (client-certificate auth, RBAC),
kube-controller-manager, kube-scheduler and the KWOK controller, each with its log in the
cluster's directory. Nodes are plain ``v1.Node`` objects that KWOK manages, so the scheduler
places pods on them, the controllers see them Ready and the Eviction API, PodDisruptionBudgets
and cordons behave as on any cluster. Only the kubelets are simulated (``stages.yaml``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml
from kubernetes import client, config

from lab.k8s._binaries import KUBE_VERSION, ensure_binaries
from lab.k8s._errors import ClusterStartError, ClusterStoppedError
from lab.k8s._pki import KeyPair, Pki, make_pki

STAGES = Path(__file__).with_name("stages.yaml")
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")

#: Label that switches a KWOK fault stage on (see stages.yaml).
FAULT_LABELS = {
    "crashloop": "fault.ooda.dev/crashloop",
    "node-not-ready": "fault.ooda.dev/node-not-ready",
    "disk-pressure": "fault.ooda.dev/disk-pressure",
}


@dataclass(frozen=True)
class NodeShape:
    """The simulated nodes a cluster starts with."""

    count: int = 3
    """How many nodes KWOK manages."""
    cpu: str = "8"
    """Allocatable CPU of each node (a Kubernetes quantity)."""
    memory: str = "32Gi"
    """Allocatable memory of each node."""
    pods: int = 110
    """Pod capacity of each node."""
    zones: tuple[str, ...] = ("a", "b", "c")
    """Zone suffixes, assigned round-robin (``<region><suffix>``)."""


@dataclass(frozen=True)
class ClusterSettings:
    """One throw-away cluster; every field has a working default."""

    name: str = "ooda-lab"
    """Cluster name, used in the kubeconfig context."""
    region: str = "eu-west-1"
    """``topology.kubernetes.io/region`` of its nodes."""
    nodes: NodeShape = field(default_factory=NodeShape)
    """The fake nodes."""
    version: str = KUBE_VERSION
    """Kubernetes release whose binaries are used (built on first use)."""
    workdir: Path | None = None
    """Where certificates, etcd data and logs go; a fresh temporary directory when None."""
    keep_workdir: bool = False
    """Leave the directory behind on stop (for reading the component logs)."""
    start_timeout_s: float = 90.0
    """How long each component may take to become ready."""


@dataclass(frozen=True)
class ClusterClients:
    """``kubernetes.client`` API objects bound to one cluster."""

    api_client: client.ApiClient
    core_v1: client.CoreV1Api
    apps_v1: client.AppsV1Api
    autoscaling_v2: client.AutoscalingV2Api
    policy_v1: client.PolicyV1Api
    custom_objects: client.CustomObjectsApi
    apiextensions_v1: client.ApiextensionsV1Api


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kubeconfig(path: Path, name: str, server: str, ca: Path, user: KeyPair) -> None:
    creds = {"client-certificate": str(user.cert), "client-key": str(user.key)}
    _write_kubeconfig(path, name, server, ca, name, creds)


def _write_kubeconfig(
    path: Path, name: str, server: str, ca: Path, user: str, credentials: dict[str, str]
) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}
                ],
                "users": [{"name": user, "user": credentials}],
                "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
                "current-context": name,
            }
        )
    )
    path.chmod(0o600)


def clients_from(kubeconfig: Path) -> ClusterClients:
    """API objects of the official client for the cluster and identity of ``kubeconfig``."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    return ClusterClients(
        api_client=api,
        core_v1=client.CoreV1Api(api),
        apps_v1=client.AppsV1Api(api),
        autoscaling_v2=client.AutoscalingV2Api(api),
        policy_v1=client.PolicyV1Api(api),
        custom_objects=client.CustomObjectsApi(api),
        apiextensions_v1=client.ApiextensionsV1Api(api),
    )


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class KubeCluster:
    """A running control plane; use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(self, settings: ClusterSettings | None = None) -> None:
        self.settings = settings or ClusterSettings()
        self._procs: list[_Process] = []
        self._dir: Path | None = None
        self._own_dir = False
        self._clients: ClusterClients | None = None
        self.server = ""
        self.kubeconfig = Path()
        self._ca = Path()
        self.started_in_s = float("nan")

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> KubeCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def workdir(self) -> Path:
        if self._dir is None:
            raise ClusterStoppedError(f"cluster {self.settings.name!r} is not running")
        return self._dir

    def start(self) -> KubeCluster:
        """Start every component, create the nodes and wait until they are Ready."""
        began = time.monotonic()
        s = self.settings
        bin_dir = ensure_binaries(s.version)
        if s.workdir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"ooda-{s.name}-"))
            self._own_dir = True
        else:
            self._dir = s.workdir
            self._dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_components(bin_dir, make_pki(self._dir / "pki"))
            self._create_nodes()
            self._wait(self._nodes_ready, "nodes Ready", s.start_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every component (TERM, then KILL after 10 s) and remove the directory."""
        for proc in reversed(self._procs):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for proc in reversed(self._procs):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=5)
            proc.handle.close()
        self._procs.clear()
        if self._clients is not None:
            self._clients.api_client.close()
            self._clients = None
        if self._dir is not None and self._own_dir and not self.settings.keep_workdir:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.popen.poll() is None for p in self._procs)

    # -- clients ------------------------------------------------------------------------------

    def clients(self) -> ClusterClients:
        """API objects of the official client, configured from this cluster's kubeconfig."""
        if self._dir is None:
            raise ClusterStoppedError(f"cluster {self.settings.name!r} is not running")
        if self._clients is None:
            self._clients = clients_from(self.kubeconfig)
        return self._clients

    def service_account_kubeconfig(
        self, namespace: str, name: str, expiration_s: int = 86_400
    ) -> Path:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name`` with a bound
        token from the TokenRequest API: the identity a pod of that account has, RBAC and all."""
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_s)
        )
        issued = self.clients().core_v1.create_namespaced_service_account_token(
            name, namespace, request
        )
        token = str(issued.status.token) if issued.status is not None else ""
        path = self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        user = f"system:serviceaccount:{namespace}:{name}"
        _write_kubeconfig(path, self.settings.name, self.server, self._ca, user, {"token": token})
        return path

    # -- faults -------------------------------------------------------------------------------

    def set_fault(
        self, fault: str, kind: str, name: str, namespace: str = "", on: bool = True
    ) -> None:
        """Switch a KWOK fault stage on (or off) for one pod or node by its label."""
        label = FAULT_LABELS[fault]
        patch = {"metadata": {"labels": {label: "true" if on else None}}}
        api, merge = self.clients().core_v1, "application/merge-patch+json"
        if kind == "node":
            api.patch_node(name, patch, _content_type=merge)
        else:
            api.patch_namespaced_pod(name, namespace, patch, _content_type=merge)

    # -- measurements -------------------------------------------------------------------------

    def memory_rss_bytes(self) -> dict[str, int]:
        """Resident memory of each component (from /proc), for the benchmarks."""
        rss: dict[str, int] = {}
        for proc in self._procs:
            try:
                status = Path(f"/proc/{proc.popen.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    rss[proc.name] = int(line.split()[1]) * 1024
        return rss

    # -- internals ----------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> _Process:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("wb")
        popen = subprocess.Popen(
            args,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.workdir,
        )
        proc = _Process(name, popen, log, handle)
        self._procs.append(proc)
        return proc

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.popen.poll() is not None:
                    raise ClusterStartError(
                        f"{proc.name} exited with code {proc.popen.returncode} while waiting for"
                        f" {what} of cluster {self.settings.name!r}:\n{proc.tail()}"
                    )
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.2)
        tails = "\n".join(f"--- {p.name}\n{p.tail(10)}" for p in self._procs)
        raise ClusterStartError(
            f"timed out after {timeout:.0f} s waiting for {what} of cluster"
            f" {self.settings.name!r}:\n{tails}"
        )

    def _start_components(self, bin_dir: Path, pki: Pki) -> None:
        d, s = self.workdir, self.settings
        shutil.rmtree(d / "etcd", ignore_errors=True)  # a reused workdir starts empty
        etcd_port, etcd_peer, api_port = _free_port(), _free_port(), _free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=default",
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=1073741824",
                "--log-level=warn",
            ],
        )
        self._wait(lambda: _http_ok(f"{etcd_url}/health"), "etcd", self.settings.start_timeout_s)

        self.server = f"https://127.0.0.1:{api_port}"
        self._spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                "--advertise-address=127.0.0.1",
                "--bind-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--etcd-servers={etcd_url}",
                f"--tls-cert-file={pki.serving.cert}",
                f"--tls-private-key-file={pki.serving.key}",
                f"--client-ca-file={pki.ca.cert}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=Node,RBAC",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=0",
            ],
        )
        self.kubeconfig = d / "kubeconfig"
        self._ca = pki.ca.cert
        _kubeconfig(self.kubeconfig, self.settings.name, self.server, pki.ca.cert, pki.admin)
        # With --use-service-account-credentials=false every controller runs as the manager
        # itself, which then needs the union of their rights: it gets the admin identity.
        for stem, pair in (("kcm", pki.admin), ("scheduler", pki.scheduler)):
            _kubeconfig(d / f"{stem}.kubeconfig", s.name, self.server, pki.ca.cert, pair)
        self._wait(
            lambda: _http_ok(f"{self.server}/readyz", pki.ca.cert, pki.admin),
            "kube-apiserver /readyz",
            self.settings.start_timeout_s,
        )

        self._spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={d / 'kcm.kubeconfig'}",
                "--secure-port=0",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                f"--root-ca-file={pki.ca.cert}",
                f"--service-account-private-key-file={pki.service_account_key}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--v=0",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={d / 'scheduler.kubeconfig'}",
                "--secure-port=0",
                "--leader-elect=false",
                "--v=0",
            ],
        )
        self._spawn(
            "kwok",
            [
                str(bin_dir / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={STAGES}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector="
                f"{KWOK_NODE_ANNOTATION[0]}={KWOK_NODE_ANNOTATION[1]}",
                "--node-lease-duration-seconds=40",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.0.1",
            ],
        )

    def _create_nodes(self) -> None:
        s = self.settings
        core = self.clients().core_v1
        resources = {"cpu": s.nodes.cpu, "memory": s.nodes.memory, "pods": str(s.nodes.pods)}
        for i in range(s.nodes.count):
            name = f"{s.name}-node-{i}"
            zone = f"{s.region}{s.nodes.zones[i % len(s.nodes.zones)]}"
            node = client.V1Node(
                metadata=client.V1ObjectMeta(
                    name=name,
                    annotations={
                        KWOK_NODE_ANNOTATION[0]: KWOK_NODE_ANNOTATION[1],
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    labels={
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                        "topology.kubernetes.io/region": s.region,
                        "topology.kubernetes.io/zone": zone,
                    },
                ),
                status=client.V1NodeStatus(allocatable=resources, capacity=resources),
            )
            core.create_node(node)

    def _nodes_ready(self) -> bool:
        nodes = self.clients().core_v1.list_node().items
        if len(nodes) < self.settings.nodes.count:
            return False
        return all(node_ready(n) and not _not_ready_taint(n) for n in nodes)


def node_ready(node: Any) -> bool:
    """Whether a ``V1Node`` reports Ready=True."""
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def _not_ready_taint(node: Any) -> bool:
    return any(t.key == "node.kubernetes.io/not-ready" for t in (node.spec.taints or []))


def _http_ok(url: str, ca: Path | None = None, user: KeyPair | None = None) -> bool:
    import httpx

    verify: Any = True
    if ca is not None:
        import ssl

        ctx = ssl.create_default_context(cafile=str(ca))
        if user is not None:
            ctx.load_cert_chain(str(user.cert), str(user.key))
        verify = ctx
    try:
        response = httpx.get(url, verify=verify, timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200
