"""X/Y/Z plot: vary up to three parameters and get one labelled grid per Z value.

Without the UI:

    from <this package> import make_xyz_plot, make_axis
    result = make_xyz_plot(easel, request, make_axis("Seed", "1-2"), make_axis("Steps", "1,2,3"))
"""

import pluggy

from .axes import AXIS_TYPES, Axis, make_axis, parse_values
from .grid import draw_grid
from .plot import XYZResult, make_xyz_plot

hookimpl = pluggy.HookimplMarker("easel")


@hookimpl
def register_ui_sections(tab, register):
    if tab.name == "txt2img":
        from .section import build_section

        register("X/Y/Z plot", lambda: build_section(tab))


__all__ = ["AXIS_TYPES", "Axis", "XYZResult", "draw_grid", "make_axis", "make_xyz_plot", "parse_values"]
