"""Extensions: folders under `extensions/` (or installed packages with an `easel` entry point) that add
model families, upscalers, presets, UI tabs and sections, API routes, and generation hooks.

The contract is `app.extensions.hookspecs`; an extension marks its functions with `hookimpl`:

    from app.extensions import hookimpl

    @hookimpl
    def on_image_saved(path, infotext): ...
"""

from app.extensions.hookspecs import hookimpl

__all__ = ["hookimpl"]
