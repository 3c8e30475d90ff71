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

When the champion is itself the recipe's model trained just before such a batch (it was the
previous round's challenger, and was promoted), that batch has no other predecessor; then its
rows pair the champion with the model it replaced (alias ``previous``, the same recipe, which
never saw the batch either): the same comparison one round earlier, the fresher model on the
"retrain" side. Why: on seattle-weather by half-year the labels changed definition in 2013. The
champion trained through 2013H1 had beaten the one before it on 2013H2 by 0.717 to 0.304 (out of
time for both), yet the challenger trained with 2013H2 could not be told from it on 2013H2's
held-out rows (no row right by one alone), so the gate kept it, and it scored 0.475 on 2014H1
where the challenger would have scored 0.834 (``benchmarks/drift_recovery.py``). While the stream
keeps moving, each round's fresher model beat the one before it on rows neither saw; the pooled
test then promotes the next one that is no worse on its own held-out rows. On a stream that does
not move the pairs are coin flips (or agree), and the gate is as strict as before; once the
champion has seen every batch but the newest, only one round's pair is left to pool.
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
    stale: str | None = None  # the version on the champion's side: None, the champion itself

    def to_dict(self) -> dict:
        return {"batch": self.batch, "version": self.version, "rows": len(self.rows),
                "against": self.stale or "champion"}


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
    stale = _replaced(registry, repo, cfg, champion, theirs, mine.config_hash)
    parts = []
    for i in unseen:
        pair = (found[paths[i]][1], None) if paths[i] in found else None
        if pair is None and stale is not None and paths[i - 1] == stale[1] and paths[i] not in stale[2]:
            pair = (champion, stale[0])  # the champion trained just before this batch, against what it replaced
        if pair is None:
            continue
        df = repo.read_dataframe(mine.data_commit, paths[i])
        held, _ = sides(df, cfg, schema.row_key)
        rows = df[~held & df[schema.target.name].notna()].reset_index(drop=True)
        if len(rows):
            parts.append(OutOfTimePart(paths[i], pair[0], rows, pair[1]))
    return parts


def _replaced(registry: Registry, repo: DataRepository, cfg: RatchetConfig, champion: str, theirs: VersionLineage,
              config_hash: str | None) -> tuple[str, str, set[str]] | None:
    """(the version the champion replaced, the champion's newest batch, the batches that version saw):
    alias ``previous``, older than the champion, of the same recipe (config hash), its model stored;
    None otherwise."""
    from ratchet.training.window import batch_paths

    previous = registry.alias("previous")
    if previous is None or previous == champion or int(previous) > int(champion):
        return None
    lineage = registry.lineage(previous)
    if lineage.config_hash != config_hash or theirs.config_hash != config_hash or not lineage.data_commit \
            or not theirs.data_commit or registry.marks(previous).artifacts_removed:
        return None
    prefix = cfg.data.batch_prefix
    champions = batch_paths(repo, theirs.data_commit, prefix)
    if not champions:
        return None
    return previous, champions[-1], set(batch_paths(repo, lineage.data_commit, prefix))
