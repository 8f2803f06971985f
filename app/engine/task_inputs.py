"""What each task adds to a pipeline call, its infotext and its result: a table, not if-chains.

    inputs = TASK_INPUTS[request.task](request, width, height, seed)
    kwargs.update(inputs.kwargs); image = inputs.finish(image); values.update(inputs.infotext)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from app.generation.images import fill_masked, fit_image, paste_unmasked, prepare_mask


def img2img_steps(steps: int, strength: float) -> int:
    """The steps an img2img call at `strength` runs (diffusers' get_timesteps skips the first 1 - strength)."""
    return max(1, steps - int(steps - steps * strength))


@dataclass
class TaskInputs:
    kwargs: dict[str, Any] = field(default_factory=dict)  # image=, strength=, mask_image=...
    infotext: dict[str, Any] = field(default_factory=dict)  # Denoising strength, Mask blur...
    unchanged: Any = None  # the picture a strength-0 job returns as it is (no denoising at all)
    finish: Callable[[Any], Any] = lambda image: image  # e.g. inpaint puts the unmasked pixels back
    warnings: list[str] = field(default_factory=list)

    def steps_run(self, steps: int) -> int:
        """The denoising steps diffusers' get_timesteps runs for this strength (all of them for txt2img)."""
        strength = self.kwargs.get("strength")
        return steps if strength is None else img2img_steps(steps, strength)


def txt2img_inputs(request, width: int, height: int, seed: int) -> TaskInputs:
    return TaskInputs()


def img2img_inputs(request, width: int, height: int, seed: int) -> TaskInputs:
    image = fit_image(request.image, width, height, request.resize_mode)
    inputs = TaskInputs(kwargs={"image": image, "strength": request.strength},
                        infotext={"Denoising strength": request.strength})
    if request.strength == 0:
        inputs.unchanged = image
        if not request.stages:  # a later stage (a tiled upscale, a refine) still works on it
            inputs.warnings.append("denoising strength 0: the input image is returned unchanged")
    return inputs


def inpaint_inputs(request, width: int, height: int, seed: int) -> TaskInputs:
    image = fit_image(request.image, width, height, request.resize_mode)
    mask = prepare_mask(request.mask, width, height, request.resize_mode, request.mask_blur)
    kwargs = {"image": fill_masked(image, mask, request.masked_content, seed), "mask_image": mask,
              "strength": request.strength}
    infotext: dict[str, Any] = {"Denoising strength": request.strength, "Mask blur": request.mask_blur}
    if request.masked_content != "original":
        infotext["Masked content"] = request.masked_content
    if request.inpaint_only_masked:
        infotext.update({"Inpaint area": "Only masked", "Masked area padding": request.inpaint_padding})
        if mask.getbbox() is not None:  # diffusers cannot crop to nothing
            kwargs["padding_mask_crop"] = request.inpaint_padding
    return TaskInputs(kwargs=kwargs, infotext=infotext, unchanged=image if request.strength == 0 else None,
                      finish=lambda out: paste_unmasked(out, image, mask))


TASK_INPUTS: dict[str, Callable[..., TaskInputs]] = {
    "txt2img": txt2img_inputs,
    "img2img": img2img_inputs,
    "inpaint": inpaint_inputs,
}
