"""Out-of-time rows for the gate: batches the champion never saw, scored by the challenger's predecessors.

The gate's own rows are the held-out rows of the challenger's window (about a fifth of each
batch): on small batches too few to tell a better challenger from chance. Yet every row of a
batch published after the champion's data is out of time for the champion, and out of time too
for a model of the same recipe (the same config) trained just before that batch: the challenger
of the previous round. Its predictions and the champion's on that batch are one more paired
comparison of "retrain the same way on the newest data" against "keep the champion", on rows
neither model saw.

Each row is scored once: of such a batch only the rows the split does not hold out are used (its
held-out rows are the current challenger's, when its window holds the batch), so the pooled
discordant rows stay independent given the models and the exact McNemar test on them keeps its
level (under the null every model of the recipe is no better than the champion, and each
discordant row is a coin flip at most fair to the challenger). The gate pools these rows only
into its significance test; the floor and the practical effect stay on the challenger's own
held-out rows, so the model that is promoted must itself be no worse on the rows it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ratchet.core.config import RatchetConfig
from ratchet.core.schema import Schema
from ratchet.data.repository.base import DataRepository
from ratchet.training.registry import Registry
from ratchet.training.versions import VersionLineage


@dataclass(frozen=True)
class OutOfTimePart:
    """One batch the champion never saw: its rows the split does not hold out, and the version
    of the challenger's recipe trained on the batches published just before it."""

    batch: str
    version: str
    rows: pd.DataFrame

    def to_dict(self) -> dict:
        return {"batch": self.batch, "version": self.version, "rows": len(self.rows)}


def out_of_time_parts(registry: Registry, repo: DataRepository, schema: Schema, cfg: RatchetConfig,
                      challenger: str, champion: str) -> list[OutOfTimePart]:
    """The parts among the newest ``cfg.gate.out_of_time_batches`` batches at the challenger's
    data commit: each batch published after the champion's data with a predecessor (a version
    other than the champion and the challenger, with the challenger's config hash, trained at the
    commit whose newest batch is the one just before it, its model still stored). Oldest first."""
    from ratchet.training.window import batch_paths, sides

    newest = cfg.gate.out_of_time_batches
    if not newest:
        return []
    mine, theirs = registry.lineage(challenger), registry.lineage(champion)
    prefix = cfg.data.batch_prefix
    paths = batch_paths(repo, mine.data_commit, prefix)
    seen = set(batch_paths(repo, theirs.data_commit, prefix))
    unseen = [i for i, p in enumerate(paths) if p not in seen and i > 0][-newest:]
    if not unseen:
        return []
    before = {paths[i - 1]: paths[i] for i in unseen}  # the newest batch a predecessor trained with -> scored batch
    found: dict[str, tuple[int, str]] = {}  # scored batch -> (version number, version)
    newest_of: dict[str, str | None] = {}
    for mv in registry.client.search_model_versions(f"name = '{registry.model_name}'"):
        version = str(mv.version)
        # a version older than the champion trained on data newer than its: only by an explicit older ref;
        # skipping those bounds the listings to the versions since the champion
        lineage = VersionLineage.from_tags(mv.tags)
        if version in (challenger, champion) or int(version) < int(champion) or lineage.config_hash != mine.config_hash:
            continue
        commit = lineage.data_commit
        if commit not in newest_of:
            listed = batch_paths(repo, commit, prefix) if commit else []
            newest_of[commit] = listed[-1] if listed else None
        scored = before.get(newest_of[commit])
        if scored is None or registry.marks(version).artifacts_removed:
            continue
        if scored not in found or int(version) > found[scored][0]:  # the newest such training
            found[scored] = (int(version), version)
    parts = []
    for i in unseen:
        if paths[i] not in found:
            continue
        df = repo.read_dataframe(mine.data_commit, paths[i])
        held, _ = sides(df, cfg, schema.row_key)
        rows = df[~held & df[schema.target.name].notna()].reset_index(drop=True)
        if len(rows):
            parts.append(OutOfTimePart(paths[i], found[paths[i]][1], rows))
    return parts
