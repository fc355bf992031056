"""The PetShop root-cause benchmark of ``ooda rca``, with the PetShop harness's definitions.

For every issue of every scenario under ``--data`` (train and test pooled, as the harness
pools them): recall@1 and recall@3 of the true root-cause component in the ranking, by
scenario and target metric, and the share of empty answers. Specificity as the harness
measures it: on a scenario's ``noissue`` metrics of n rows, split at n/2, n/2 + n/10, ... up
to n - 3; the rows before the split are normal, all the rows after it "abnormal"; a window is
right when the ranking is empty; the mean over windows, then over the scenario's distinct
targets. Then the time to rank a symptom on a 50-component call graph.

The published baseline (the harness's anomaly traversal, from its notebook) is printed beside
it. Run: ``make bench-rca`` (``benchmarks/bench_rca.py --data ../shared/data/petshop``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from ooda._petshop import read_graph, read_metrics
from ooda._rca import HARMFUL, RcaSettings, rank_causes

#: The harness's anomaly traversal on the full dataset (recall@1, recall@3, specificity).
BASELINE = {
    ("low_traffic", "latency"): (0.571, 0.571, 0.167),
    ("low_traffic", "availability"): (0.833, 1.000, 1.000),
    ("temporal_traffic", "latency"): (1.000, 1.000, 0.600),
    ("temporal_traffic", "availability"): (0.750, 1.000, 1.000),
}


def _family(scenario: str) -> str:
    """The harness groups temporal_traffic1 and 2 as temporal_traffic."""
    return scenario.rstrip("0123456789")


def recall(data: Path, settings: RcaSettings) -> pd.DataFrame:
    """One row per issue: whether the root cause is in the top 1 and top 3, or the answer empty."""
    rows = []
    for scenario in sorted(p for p in data.iterdir() if (p / "graph.csv").is_file()):
        calls = read_graph(scenario / "graph.csv")
        normal_file = scenario / "noissue" / "metrics.csv"
        for target_file in sorted(scenario.glob("*/issue_*/target.json")):
            spec = json.loads(target_file.read_text())
            metric, statistic = spec["target"]["metric"], spec["target"]["agg"]
            abnormal = read_metrics(target_file.parent / "metrics.csv", metric, statistic)
            normal = read_metrics(normal_file, metric, statistic) if normal_file.is_file() else None
            began = time.perf_counter()
            causes = rank_causes(
                calls,
                abnormal,
                spec["target"]["node"],
                direction=HARMFUL[metric],
                normal=normal,
                settings=settings,
            )
            took = time.perf_counter() - began
            names = [c.node for c in causes]
            truth = spec["root_cause"]["node"]
            rows.append(
                {
                    "scenario": _family(scenario.name),
                    "split": target_file.parent.parent.name,
                    "issue": target_file.parent.name,
                    "metric": metric,
                    "top1": truth in names[:1],
                    "top3": truth in names[:3],
                    "empty": not names,
                    "seconds": took,
                }
            )
    return pd.DataFrame(rows)


def specificity(data: Path, settings: RcaSettings) -> pd.DataFrame:
    """Per scenario and metric, the share of normal windows answered with an empty ranking."""
    rows = []
    for scenario in sorted(p for p in data.iterdir() if (p / "graph.csv").is_file()):
        normal_file = scenario / "noissue" / "metrics.csv"
        if not normal_file.is_file():
            continue
        calls = read_graph(scenario / "graph.csv")
        targets = set()
        for target_file in scenario.glob("*/issue_*/target.json"):
            t = json.loads(target_file.read_text())["target"]
            targets.add((t["node"], t["metric"], t["agg"]))
        for node, metric, statistic in sorted(targets):
            frame = read_metrics(normal_file, metric, statistic)
            n = len(frame)
            right = []
            for split in range(n // 2, n - 2, max(1, int(0.1 * n))):
                causes = rank_causes(
                    calls,
                    frame.iloc[split:],
                    node,
                    direction=HARMFUL[metric],
                    normal=frame.iloc[:split],
                    settings=settings,
                )
                right.append(not causes)
            rows.append(
                {
                    "scenario": _family(scenario.name),
                    "metric": metric,
                    "specificity": np.mean(right),
                }
            )
    return pd.DataFrame(rows)


def timing(nodes: int = 50, steps: int = 12, repeats: int = 20, seed: int = 3) -> float:
    """Median seconds to rank one symptom on a random layered call graph of ``nodes``."""
    rng = np.random.default_rng(seed)
    names = [f"svc-{i}" for i in range(nodes)]
    calls = {
        name: [
            names[j]
            for j in rng.choice(range(i + 1, nodes), size=min(3, nodes - i - 1), replace=False)
        ]
        if i < nodes - 1
        else []
        for i, name in enumerate(names)
    }
    normal = pd.DataFrame(rng.normal(100, 5, size=(288, nodes)), columns=names)
    abnormal = pd.DataFrame(rng.normal(100, 5, size=(steps, nodes)), columns=names)
    culprit = names[nodes // 2]
    abnormal.loc[steps // 2 :, [culprit, names[0]]] += 80
    took = []
    for _ in range(repeats):
        began = time.perf_counter()
        rank_causes(calls, abnormal, names[0], direction="up", normal=normal)
        took.append(time.perf_counter() - began)
    return float(np.median(took))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/petshop"))
    parser.add_argument("--persistence", type=int, default=RcaSettings().persistence)
    args = parser.parse_args()
    console = Console(width=130)
    if not args.data.is_dir():
        console.print(f"[red]bench_rca: no PetShop data at {args.data}[/]")
        raise SystemExit(2)
    settings = replace(RcaSettings(), persistence=args.persistence)
    issues = recall(args.data, settings)
    spec = specificity(args.data, settings)
    table = Table(title=f"ooda rca on PetShop ({args.data}), persistence {settings.persistence}")
    for col in ("scenario", "metric", "issues", "recall@1", "recall@3", "empty", "specificity",
                "baseline r@1 / r@3 / spec"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("scenario", "metric") else "right")
    for (scenario, metric), group in issues.groupby(["scenario", "metric"]):
        s = spec[(spec.scenario == scenario) & (spec.metric == metric)].specificity
        base = BASELINE.get((scenario, metric))
        table.add_row(
            scenario,
            metric,
            str(len(group)),
            f"{group.top1.mean():.3f}",
            f"{group.top3.mean():.3f}",
            f"{group['empty'].mean():.2f}",
            f"{s.mean():.3f}" if len(s) else "no noissue data",
            " / ".join(f"{v:.3f}" for v in base) if base else "",
        )
    console.print(table)
    for split, group in issues.groupby("split"):
        console.print(
            f"{split}: {len(group)} issues, recall@1 {group.top1.mean():.3f},"
            f" recall@3 {group.top3.mean():.3f}"
        )
    means = issues.groupby(["scenario", "metric"])[["top1", "top3"]].mean().mean()
    console.print(
        f"mean over scenarios and metrics: recall@1 {means.top1:.3f}, recall@3 {means.top3:.3f};"
        f" per issue {issues.seconds.median() * 1e3:.1f} ms (median);"
        f" 50-component graph {timing() * 1e3:.1f} ms (median of 20)"
    )


if __name__ == "__main__":
    main()
