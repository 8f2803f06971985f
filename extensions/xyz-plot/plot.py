"""make_xyz_plot: the images of every X/Y/Z combination through the facade, and their grids."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from .axes import Axis
from .grid import draw_grid

MAX_CELLS = 500


@dataclass
class XYZResult:
    grids: list = field(default_factory=list)  # one PIL image per Z value
    images: list = field(default_factory=list)  # every cell, Z-major, then Y, then X
    infotexts: list[str] = field(default_factory=list)
    grid_paths: list = field(default_factory=list)
    interrupted: bool = False  # stopped by the user: the cells made so far, grids of complete Z values only


def make_xyz_plot(facade, base_request, x_axis: Axis, y_axis: Axis | None = None, z_axis: Axis | None = None,
                  *, save_grids: bool | None = None) -> XYZResult:
    """One image per combination (batch of 1). A random seed (-1) is fixed once, so that cells differ
    only in their axes (A1111's behaviour). Grids are saved when `save_grids`, default: base_request.save."""
    y_values = y_axis.values if y_axis else (None,)
    z_values = z_axis.values if z_axis else (None,)
    cells = len(x_axis.values) * len(y_values) * len(z_values)
    if cells > MAX_CELLS:
        raise ValueError(f"{cells} images asked for; an X/Y/Z plot makes at most {MAX_CELLS}")
    base = base_request.model_copy(update={"batch_size": 1, "batch_count": 1})
    if base.seed < 0:
        base = base.model_copy(update={"seed": random.randint(0, 2**32 - 1)})
    result = XYZResult()
    for zi, z in enumerate(z_values):
        rows = []
        for y in y_values:
            row = []
            for x in x_axis.values:
                request = base
                for axis, value in ((z_axis, z), (y_axis, y), (x_axis, x)):
                    if axis is not None:
                        request = axis.apply(request, value)
                made = facade.generate(request)
                if made.interrupted or not made.images:  # the user stopped it: the plot stops too
                    result.interrupted = True
                    result.images.extend(made.images[:1])
                    result.infotexts.extend(made.infotexts[:1])
                    return result
                row.append(made.images[0])
                result.images.append(made.images[0])
                result.infotexts.append(made.infotexts[0])
            rows.append(row)
        title = z_axis.labels()[zi] if z_axis else ""
        grid = draw_grid(rows, x_axis.labels(), y_axis.labels() if y_axis else [""], title)
        result.grids.append(grid)
        if base.save if save_grids is None else save_grids:
            first = result.infotexts[-len(x_axis.values) * len(y_values)]
            result.grid_paths.append(facade.save_image(grid, infotext=first, seed=base.seed, task="grids"))
    return result


__all__ = ["XYZResult", "make_xyz_plot"]
