"""The training summary: a Markdown page for the console and the JSON kept beside each model."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def loss_curve(losses: list[float], points: int = 20) -> list[float]:
    """The loss averaged over `points` equal spans of the run, small enough to keep in a report."""
    if not losses:
        return []
    n = min(points, len(losses))
    bounds = [round(i * len(losses) / n) for i in range(n + 1)]
    return [sum(losses[a:b]) / (b - a) for a, b in zip(bounds, bounds[1:])]


def stage_summary(report: dict[str, Any]) -> dict[str, Any]:
    """A stage report without its per-step losses, which are replaced by a short curve."""
    out = {k: v for k, v in report.items() if k != "losses"}
    if "losses" in report:
        out["loss_curve"] = loss_curve(report["losses"])
    return out


def _fraction(result: dict[str, Any], size: str, key: str = "both") -> str:
    r = result[size]
    return f"{r[key]}/{r['pictures']}"


def markdown(report: dict[str, Any]) -> str:
    """The whole run as a Markdown page: stages, VAE quality, adherence per model and size."""
    lines = ["# Shapes demo models: training report",
             "",
             f"Config `{report['config']}`, seed {report['seed']}, device `{report['device']}`, "
             f"total {report['seconds'] / 60:.1f} min.",
             "",
             "| stage | steps | ms/step | minutes | loss (first → last 5 % of steps) |",
             "|---|---|---|---|---|"]
    for name in ("vae", "flux", "sd3"):
        st = report["stages"][name]
        curve = st["loss_curve"]
        lines.append(f"| {name} | {st['steps']} | {st['ms_per_step']:.0f} | {st['seconds'] / 60:.1f} | "
                     f"{curve[0]:.3f} → {curve[-1]:.3f} |")
    pool = report["stages"]["pool"]
    lines.append(f"| pool encode | {sum(pool['pictures'].values())} pictures | | {pool['seconds'] / 60:.1f} | |")
    lines += ["",
              "VAE reconstruction MSE ([-1, 1] scale): " + ", ".join(
                  f"{s} px {v:.4f}" for s, v in report["stages"]["vae"]["reconstruction_mse"].items())
              + f"; latent mean {pool['latent_mean']:.4f}, std {pool['latent_std']:.4f}.",
              "",
              "## Colour adherence (shape colour and background both right, by the pixel judge)",
              ""]
    sizes = report["sizes"]
    lines.append("| model | defaults | " + " | ".join(f"{s} px" for s in sizes)
                 + f" | shape type {sizes[-1]} px | left/right {sizes[-1]} px | size |")
    lines.append("|---" * (len(sizes) + 5) + "|")
    for family in ("flux", "sd3"):
        m = report["models"][family]
        d = m["defaults"]
        ev = m["evaluation"]
        lines.append(f"| {m['name']} | {d['steps']} steps, cfg {d['cfg_scale']} | "
                     + " | ".join(_fraction(ev, str(s)) for s in sizes)
                     + f" | {_fraction(ev, str(sizes[-1]), 'shape_type')} | {_fraction(m['sides'], str(sizes[-1]))}"
                     f" | {m['bytes'] / 1e6:.1f} MB |")
    sd3 = report["models"]["sd3"]
    lines += ["", "SD3 defaults sweep (subset, " + f"{sizes[-1]} px): " + ", ".join(
        f"{s['steps']} steps cfg {s['cfg_scale']}: {100 * s['both']:.0f} %" for s in sd3["sweep"])
              + f"; without CFG: {100 * sd3['without_cfg']:.0f} %."]
    for family in ("flux", "sd3"):
        fails = [f for s in sizes for f in report["models"][family]["evaluation"][str(s)]["failures"]]
        if fails:
            lines.append(f"\n{family} misses (first few): " + "; ".join(fails[:5]))
    return "\n".join(lines) + "\n"
