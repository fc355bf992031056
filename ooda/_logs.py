"""Log evidence: which message templates surged when the symptom began.

Lines are mined into templates with Drain3 (a streaming fixed-depth tree miner: each line
joins the closest template or starts one), numbers, addresses, hex ids and durations masked
first, so ``query timeout after 838ms on payments-db`` and ``... 1041ms ...`` are one template.
One miner reads the normal window and the recent one, so their templates are shared; a
template's surge is its rate now against its rate then, with one count of smoothing, so a
template never seen before scores by its own count. Ordinary noise (health checks, cache
misses, the odd slow request) keeps its rate and scores about zero.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

#: (regex, mask) applied before mining, most specific first.
MASKS = (
    (r"\d{4}-\d{2}-\d{2}T[\d:.]+Z?", "TIME"),
    (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b", "IP"),
    (r"\b[0-9a-f]{6,}\b", "HEX"),
    (r"\b\d+(?:\.\d+)?(?:ms|s|%)?\b", "NUM"),
)


@dataclass(frozen=True)
class TemplateSurge:
    """A template whose rate rose: its text, counts, and ``log2`` of the rate ratio."""

    template: str
    baseline: int
    recent: int
    score: float
    example: str


class LogTemplates:
    """A Drain3 miner with ooda's masks; ``add`` returns a line's template id."""

    def __init__(self, similarity: float = 0.5, depth: int = 4) -> None:
        config = TemplateMinerConfig()
        config.drain_sim_th = similarity
        config.drain_depth = depth
        config.masking_instructions = [MaskingInstruction(rx, mask) for rx, mask in MASKS]
        config.profiling_enabled = False
        logging.getLogger("drain3").setLevel(logging.WARNING)
        self._miner = TemplateMiner(config=config)
        self.examples: dict[int, str] = {}

    def add(self, line: str) -> int:
        """Mine ``line``; the id of its template."""
        result = self._miner.add_log_message(line.strip())
        cluster_id = int(result["cluster_id"])
        self.examples.setdefault(cluster_id, line.strip())
        return cluster_id

    def template(self, cluster_id: int) -> str:
        """The current text of a template (``<NUM>`` and the like where lines differ)."""
        for cluster in self._miner.drain.clusters:
            if cluster.cluster_id == cluster_id:
                return str(cluster.get_template())
        return ""


def template_surges(
    baseline: Iterable[str],
    recent: Iterable[str],
    *,
    baseline_minutes: float,
    recent_minutes: float,
    min_count: int = 5,
    min_score: float = 2.0,
    miner: LogTemplates | None = None,
) -> list[TemplateSurge]:
    """Templates at least ``min_count`` times in ``recent`` whose rate is at least
    ``2 ** min_score`` times their ``baseline`` rate, strongest first."""
    if baseline_minutes <= 0 or recent_minutes <= 0:
        raise ValueError("both windows need a positive length in minutes")
    m = miner or LogTemplates()
    before = Counter(m.add(line) for line in baseline if line.strip())
    now = Counter(m.add(line) for line in recent if line.strip())
    surges = []
    for cluster_id, count in now.items():
        if count < min_count:
            continue
        rate_now = count / recent_minutes
        rate_then = (before.get(cluster_id, 0) + 1) / baseline_minutes
        score = math.log2(rate_now / rate_then)
        if score >= min_score:
            surges.append(
                TemplateSurge(
                    m.template(cluster_id),
                    before.get(cluster_id, 0),
                    count,
                    round(score, 3),
                    m.examples[cluster_id],
                )
            )
    return sorted(surges, key=lambda s: (-s.score, s.template))
