"""Find the diffusers pipelines downloaded into the Hugging Face cache, so they need no copy."""

from __future__ import annotations

from pathlib import Path


def cached_pipelines(hf_cache: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """Return ([("ORG/NAME", snapshot folder)], errors) for every cached repo with a model_index.json.

    `hf_cache` is HF_HOME (holding hub/) or the hub folder itself. The snapshot is the one refs/main
    points at, else the most recently written one.
    """
    hub = hf_cache / "hub" if (hf_cache / "hub").is_dir() else hf_cache
    if not hub.exists():  # nothing downloaded yet
        return [], []
    try:
        repos = sorted(p for p in hub.iterdir() if p.name.startswith("models--"))
    except OSError as e:
        return [], [f"cannot read the Hugging Face cache {hub}: {e.strerror or e}"]
    found: list[tuple[str, Path]] = []
    for repo in repos:
        parts = repo.name.split("--", 2)
        if len(parts) != 3:
            continue
        snapshot = _snapshot(repo)
        if snapshot is not None:
            found.append((f"{parts[1]}/{parts[2]}", snapshot))
    return found, []


def _snapshot(repo: Path) -> Path | None:
    try:
        ref = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
        if ref and (repo / "snapshots" / ref / "model_index.json").is_file():
            return repo / "snapshots" / ref
    except OSError:
        pass
    try:
        snapshots = [s for s in (repo / "snapshots").iterdir() if (s / "model_index.json").is_file()]
        return max(snapshots, key=lambda s: s.stat().st_mtime) if snapshots else None
    except OSError:
        return None
