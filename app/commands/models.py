"""`python -m app models`: the catalog as a table, with the memory plan each model would get."""

from __future__ import annotations


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


def list_models(settings) -> int:
    from app.engine.engine import Engine

    engine = Engine(settings)
    try:
        scan = engine.catalog()
        device = engine.device
        print(f"device: {device.describe()}")
        print(f"models folder: {settings.models_dir}")
        rows = [("name", "family", "variant", "format", "size", "status")]
        for m in scan.models:
            rows.append((m.title, m.family or "?", m.variant or "?", m.format, _size(m.size_bytes), m.status))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for i, row in enumerate(rows):
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            if i == 0:
                print("  ".join("-" * w for w in widths))
        for m in scan.models:
            if m.problems:
                for p in m.problems:
                    print(f"  {m.name}: {p}")
            if m.ready:
                print(f"  {m.name}: plan: {engine.memory_plan(m).describe()}")
        for err in getattr(scan, "errors", ()):
            print(f"warning: {err}")
        if not scan.models:
            print(f"no models found in {settings.models_dir}")
    finally:
        engine.close()
    return 0
