"""Retention of model versions (``ratchet gc``): the artifacts and checkpoints of old versions.

A version keeps its artifacts when it holds an alias (champion, challenger, previous), when it
is one of the newest ``keep`` versions, or when the caller protects it (the champions of the
ledger: ``ratchet.runtime.gc``). Any other version loses its model artifacts (the logged model
behind ``models:/<name>/<version>``, through MLflow's artifact repository: a local folder, S3,
the MLflow server) and the checkpoints of its Optuna study (``<home>/checkpoints/<study>``,
when no kept version came from that study), then is tagged ``gc=artifacts_removed``. Its
registry row stays, with its tags, run, metrics and lineage. An artifact location that a kept
version also uses (a version registered from another's source) is left alone.

A champion of the ledger that is neither aliased nor among the newest keeps its model (what the
ledger traces and a rollback loads), not its checkpoints: they only resumed a search that ended
when it was registered. So checkpoints are bounded by ``keep`` and the aliases, while the
ledger's champions grow by one model per promotion.

A crash between the deletion and the tag leaves an untagged version without artifacts: the
next run deletes nothing more and tags it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from ratchet.core.reclaim import Reclaimed, path_bytes, remove_path
from ratchet.training.registry import ALIASES, Registry
from ratchet.training.versions import VersionLineage, VersionMarks

LEDGER = "a champion in the ledger"


@dataclass(frozen=True)
class VersionFiles:
    version: str
    artifacts: str | None  # the artifact URI of its model
    study: str | None  # its Optuna study (the checkpoint folder's name)
    aliases: tuple[str, ...]
    removed: bool  # tagged gc=artifacts_removed already
    data_commit: str | None = None


def registered_versions(registry: Registry) -> list[VersionFiles]:
    """Every version of the model, newest first (none, and no database created, on a home
    that never trained)."""
    uri = registry.settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(unquote(uri.removeprefix("sqlite:///")).split("?", 1)[0]).is_file():
        return []
    from mlflow.exceptions import MlflowException

    try:
        versions = registry.client.search_model_versions(f"name = '{registry.model_name}'")
    except MlflowException:
        return []
    out = []
    for mv in sorted(versions, key=lambda mv: -int(mv.version)):
        try:
            uri = registry.client.get_model_version_download_uri(registry.model_name, mv.version)
        except MlflowException:
            uri = None
        lineage = VersionLineage.from_tags(mv.tags)
        out.append(VersionFiles(str(mv.version), uri, lineage.optuna_study, tuple(mv.aliases),
                                VersionMarks.from_tags(mv.tags).artifacts_removed, lineage.data_commit or None))
    return out


def version_data_commits(registry: Registry) -> set[str]:
    """The data commit of every registered version (lineage reads it: garbage collection keeps it)."""
    return {v.data_commit for v in registered_versions(registry) if v.data_commit}


def retained(versions: list[VersionFiles], keep: int, protect: set[str], aliases: dict[str, str | None]
             ) -> dict[str, str]:
    """version -> why its artifacts stay: an alias (``aliases``: alias -> version, as the
    registry answers it now), among the newest ``keep``, or protected."""
    why: dict[str, str] = {}
    for i, v in enumerate(versions):
        held = [a for a in ALIASES if aliases.get(a) == v.version or a in v.aliases]
        if held:
            why[v.version] = "alias " + ",".join(held)
        elif v.version in protect:
            why[v.version] = LEDGER
        elif i < keep:
            why[v.version] = f"among the newest {keep}"
    return why


def artifact_bytes(uri: str) -> int:
    """Bytes under an artifact URI: the folder itself when local, else the store's listing."""
    if uri.startswith("file:") or "://" not in uri:
        from mlflow.utils.file_utils import local_file_uri_to_path

        return path_bytes(local_file_uri_to_path(uri))
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(uri)

    def walk(path: str | None) -> int:
        return sum(walk(f.path) if f.is_dir else int(f.file_size or 0) for f in repo.list_artifacts(path))

    return walk(None)


def delete_artifacts(uri: str) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    get_artifact_repository(uri).delete_artifacts()


def prune_versions(registry: Registry, checkpoints_dir: Path, keep: int, protect: set[str] | None = None, *,
                   dry_run: bool = False) -> Reclaimed:
    """Remove the artifacts and checkpoints of every version not retained (see the module)."""
    out = Reclaimed("versions", dry_run)
    versions = registered_versions(registry)
    why = retained(versions, keep, set(protect or ()), registry.aliases() if versions else {})
    out.kept.update({f"v{v.version}": why[v.version] for v in versions if v.version in why and not v.removed})
    kept = [v for v in versions if v.version in why]
    kept_uris = {v.artifacts for v in kept if v.artifacts}
    kept_studies = {v.study for v in kept if v.study and why[v.version] != LEDGER}

    def drop_checkpoints(v: VersionFiles) -> int:
        if v.study and v.study not in kept_studies and "/" not in v.study and v.study not in (".", ".."):
            return remove_path(Path(checkpoints_dir) / v.study, dry_run)
        return 0

    for v in versions:
        if why.get(v.version) == LEDGER and (nbytes := drop_checkpoints(v)):
            out.add("checkpoints", nbytes)
        if v.version in why or v.removed:
            continue
        nbytes = drop_checkpoints(v)
        if v.artifacts in kept_uris:  # registered from a kept version's model: it stays loadable, untagged
            out.kept[f"v{v.version}"] = "its model is a kept version's"
            if nbytes:
                out.add("checkpoints", nbytes)
            continue
        if v.artifacts:
            nbytes += _remove_artifacts(v.artifacts, dry_run)
        if not dry_run:
            registry.mark(v.version, VersionMarks(artifacts_removed=True))
        out.add("versions", nbytes, v.version)
    return out


def _remove_artifacts(uri: str, dry_run: bool) -> int:
    try:
        nbytes = artifact_bytes(uri)
    except Exception:  # a store that cannot list (gone already, no permission): nothing to count
        nbytes = 0
    if not dry_run:
        delete_artifacts(uri)
    return nbytes
