"""`python -m app models`: the catalog as a table, with the memory plan each model would get, then the
other files found (LoRAs, VAEs, encoders, upscalers, ControlNets), every file Easel cannot use with the
reason, and the folders it does not read."""

from __future__ import annotations

# kind -> how the files line names it (identify.KINDS that are not generation models).
FILE_KINDS = {"lora": "LoRA", "vae": "VAE", "clip_l": "CLIP-L", "clip_g": "CLIP-G", "t5xxl": "T5-XXL",
              "upscaler": "upscaler", "controlnet": "ControlNet"}


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
        for line in file_lines(scan):
            print(line)
        for err in getattr(scan, "errors", ()):
            print(f"warning: {err}")
        if not scan.models:
            print(f"no models found in {settings.models_dir}")
    finally:
        engine.close()
    return 0


def file_lines(scan) -> list[str]:
    """What the scan found besides models: usable files counted by kind, each unusable file with why,
    each folder Easel does not read."""
    from app.catalog.scan import makes_model_entry

    usable = [f for f in scan.files if f.usable and not makes_model_entry(f)]
    counts = [(label, [f for f in usable if f.kind == kind]) for kind, label in FILE_KINDS.items()]
    parts = [f"{len(found)} {label}" + ("s" if len(found) > 1 else "") for label, found in counts if found]
    pickled = sum(f.pickled for f in usable)
    lines = [f"files: {', '.join(parts)}" + (f" ({pickled} pickled, read weights-only)" if pickled else "")] \
        if parts else []
    unusable = scan.unusable_files()
    if unusable:
        lines.append(f"cannot use {len(unusable)} file" + ("s:" if len(unusable) > 1 else ":"))
        lines += [f"  {f.path}: {f.reason}" for f in unusable]
    for folder, what, count in getattr(scan, "unused_folders", ()):
        lines.append(f"not used by Easel: {folder} ({count} file{'s' if count > 1 else ''}: {what})")
    return lines
