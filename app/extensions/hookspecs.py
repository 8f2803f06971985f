"""The whole extension contract. Every hook is called by keyword; an implementation may take any subset
of a hook's arguments, by name (pluggy's rule), so new arguments never break old extensions.

Extensions never see the engine: they get an `EaselFacade` (`easel`) with the catalog, generation,
outputs, progress, presets and read-only settings.

Each implementation is called on its own and a raising one is recorded on its extension, which is then
switched off until the next start (see `ExtensionManager.call`). Hook wrappers are not supported.

    import pluggy
    hookimpl = pluggy.HookimplMarker("easel")
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "easel"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_model_families(register, easel):
    """Add model families: call `register(adapter)` with an `app.families.base.FamilyAdapter`."""


@hookspec
def register_upscalers(register, easel):
    """Add upscalers: call `register(upscaler)` with an `app.upscale.registry.Upscaler`
    (name, run(image, (width, height)) -> image, scale)."""


@hookspec
def register_presets(register, easel):
    """Add presets: call `register(preset)` with an `app.presets.Preset` (its styles become pickable)."""


@hookspec
def register_ui_tabs(register, easel):
    """Add top-level tabs: call `register(title, build)`; `build()` is called inside a `gr.Tab` and
    creates Gradio components (no `gr.Blocks` of its own)."""


@hookspec
def register_ui_sections(tab, register):
    """Add an accordion below a tab's controls: `tab` is a `TabHandle` (name such as "txt2img",
    `components` by field name — prompt, negative_prompt, steps, cfg_scale, guidance, width, height, seed,
    model, gallery — and `easel`). Call `register(title, build)`; `build()` runs inside the accordion."""


@hookspec
def register_api_routes(router, easel):
    """Add HTTP routes to `router` (a FastAPI `APIRouter` of this extension alone). They are served under
    `/sdapi/v1/ext/<extension name>/` with the API's authentication."""


@hookspec
def adjust_request(request):
    """Return a changed `GenerationRequest` (`request.model_copy(update=...)`) or None to leave it.

    Chained, not first-result: implementations run in load order (extension folder names, sorted),
    each receiving the previous one's request. A result that does not validate is dropped and recorded
    as that extension's error."""


@hookspec
def on_step_end(job, step, total, latents):
    """After each denoising step: `step` counts from 1 to `total`; `latents` is the model's tensor
    (read it, do not change it). Runs on the generation thread: keep it quick. An exception never
    stops the generation."""


@hookspec
def on_image_saved(path, infotext):
    """After an image (generated, upscaled or a grid) is written to the outputs folder."""
