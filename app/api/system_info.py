"""Machine facts for /memory and /cmd-flags, in A1111's shapes."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from app.settings import Settings


def ram_stats() -> dict[str, Any]:
    """{free, used, total} in bytes: `used` is this process's resident memory, as A1111 reports it."""
    try:
        import psutil
    except ImportError:
        return {"error": "psutil is not installed"}
    total = psutil.virtual_memory().total
    used = psutil.Process(os.getpid()).memory_info().rss
    return {"free": total - used, "used": used, "total": total}


def cuda_stats() -> dict[str, Any]:
    """CUDA memory as A1111 reports it, or {"error": ...} without CUDA. torch is imported only here."""
    try:
        import torch

        if not torch.cuda.is_available():
            return {"error": "unavailable"}
        free, total = torch.cuda.mem_get_info()
        s = torch.cuda.memory_stats()
    except Exception as exc:  # a broken driver must not break /memory
        return {"error": f"{type(exc).__name__}: {exc}"}

    def pair(name: str) -> dict[str, int]:
        return {"current": s.get(f"{name}_bytes.all.current", 0), "peak": s.get(f"{name}_bytes.all.peak", 0)}

    return {
        "system": {"free": free, "used": total - free, "total": total},
        "active": pair("active"),
        "allocated": pair("allocated"),
        "reserved": pair("reserved"),
        "inactive": pair("inactive_split"),
        "events": {"retries": s.get("num_alloc_retries", 0), "oom": s.get("num_ooms", 0)},
    }


def cmd_flags(settings: Settings, api_flags: dict[str, Any]) -> dict[str, Any]:
    """The settings in force, under A1111's flag names where they exist, plus the API's own flags."""
    out: dict[str, Any] = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        out[f.name] = str(value) if isinstance(value, Path) else value
    out["ckpt_dir"] = out["models_dir"]
    return {**out, "api": True, **api_flags}
