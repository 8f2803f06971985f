"""Request and response bodies of /sdapi/v1, as A1111 names them.

Request models accept unknown fields (`extra="allow"`): A1111 clients send many fields that do not
apply to FLUX.1 / SD3.5, and a request must not fail because of them. Fields Easel reads are typed, so
a wrong type is a 422 naming the field. Unlike A1111 (width/height 512, steps 20 when absent), absent
width, height, steps and cfg_scale take the selected model's own defaults (FLUX schnell: 4 steps, no
CFG; SD3.5 large: 28 steps, CFG 4.5; 1024x1024); explicit values are used as given.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_REQUEST = ConfigDict(extra="allow", allow_inf_nan=False, populate_by_name=True)
_MODEL_DEFAULT = "absent: the model's default"


class GenerationBody(BaseModel):
    """Fields txt2img and img2img share."""

    model_config = _REQUEST

    prompt: str | None = Field("", description="what to draw")
    negative_prompt: str | None = Field("", description="used by SD3.5 and by FLUX with true CFG (cfg_scale > 1)")
    styles: list[str] | None = Field(None, description="prompt styles: Easel has none yet; listed as ignored")
    seed: int = Field(-1, description="-1 picks a random seed")
    sampler_name: str | None = Field(None, description="FLUX.1 and SD3.5 sample with flow-matching Euler; "
                                                       "another name is noted in info and Euler is used")
    sampler_index: str | None = Field(None, description="older name of sampler_name")
    scheduler: str | None = Field(None, description="only 'Simple' exists for flow matching")
    batch_size: int = Field(1, description="images per batch")
    n_iter: int = Field(1, description="number of batches")
    steps: int | None = Field(None, description=_MODEL_DEFAULT)
    cfg_scale: float | None = Field(None, description=f"true CFG; {_MODEL_DEFAULT}")
    distilled_cfg_scale: float | None = Field(None, description=f"Forge: FLUX dev distilled guidance; {_MODEL_DEFAULT}")
    width: int | None = Field(None, description=f"multiple of 16; {_MODEL_DEFAULT}")
    height: int | None = Field(None, description=f"multiple of 16; {_MODEL_DEFAULT}")
    override_settings: dict[str, Any] | None = Field(
        None, description="sd_model_checkpoint selects the model for this request; other keys are ignored")
    override_settings_restore_afterwards: bool = Field(
        True, description="false: the override_settings model stays selected afterwards")
    send_images: bool = Field(True, description="false: the response holds no images")
    save_images: bool = Field(False, description="true: also save the images to the outputs folder")


class Txt2ImgRequest(GenerationBody):
    denoising_strength: float | None = Field(None, description="hires fix: how far the second pass denoises "
                                                                 "(0.7 when not given)")
    enable_hr: bool | None = Field(False, description="hires fix: upscale (hr_scale or hr_resize_x/y, hr_upscaler) "
                                                      "and denoise again (hr_second_pass_steps, hr_cfg, "
                                                      "hr_distilled_cfg, hr_prompt, hr_negative_prompt)")


class Img2ImgRequest(GenerationBody):
    init_images: list[str] | None = Field(None, description="base64 images; the first one is used")
    mask: str | None = Field(None, description="base64 mask, white where the image is repainted: makes it inpainting")
    mask_blur: int | None = Field(4, description="pixels of blur on the mask edge")
    inpainting_fill: int = Field(1, description="0 fill, 1 original, 2 latent noise, 3 latent nothing: "
                                                "Easel always starts from the original content")
    inpaint_full_res: bool = Field(False, description="true: repaint only the masked area at full resolution")
    inpaint_full_res_padding: int = Field(32, description="pixels around the masked area when inpaint_full_res")
    inpainting_mask_invert: bool = Field(False, description="1: repaint where the mask is black")
    resize_mode: int = Field(0, description="0 just resize, 1 crop and resize, 2 resize and fill, "
                                            "3 just resize (latent upscale): treated as 0")
    denoising_strength: float | None = Field(0.75, description="0 keeps the input, 1 replaces it")
    include_init_images: bool = Field(False, description="echo init_images and mask in `parameters`")


class GenerationResponse(BaseModel):
    images: list[str] = Field(description="raw base64 PNGs with the infotext in their `parameters` chunk")
    parameters: dict[str, Any] = Field(description="the request as received")
    info: str = Field(description="JSON text: prompt, all_seeds, infotexts, ignored_fields, ...")


class ExtrasBase(BaseModel):
    model_config = _REQUEST

    resize_mode: int = Field(0, description="0: scale by upscaling_resize; 1: to upscaling_resize_w x _h")
    show_extras_results: bool = True
    upscaling_resize: float = Field(2, description="scale factor (resize_mode 0)")
    upscaling_resize_w: int = Field(512, description="target width (resize_mode 1)")
    upscaling_resize_h: int = Field(512, description="target height (resize_mode 1)")
    upscaling_crop: bool = Field(True, description="resize_mode 1: crop to the exact target size")
    upscaler_1: str | None = Field("None", description="see /sdapi/v1/upscalers")
    upscaler_2: str | None = Field("None", description="blended over upscaler_1 by extras_upscaler_2_visibility")
    extras_upscaler_2_visibility: float = Field(0, ge=0, le=1)
    gfpgan_visibility: float = Field(0, description="face restoration: not available, ignored")
    codeformer_visibility: float = Field(0, description="face restoration: not available, ignored")
    codeformer_weight: float = 0
    upscale_first: bool = False


class ExtrasSingleImageRequest(ExtrasBase):
    image: str = Field("", description="base64 image")


class ExtrasSingleImageResponse(BaseModel):
    html_info: str
    image: str | None = None


class FileData(BaseModel):
    data: str = Field(description="base64 image")
    name: str = ""


class ExtrasBatchImagesRequest(ExtrasBase):
    imageList: list[FileData] = Field(description="images to upscale")


class ExtrasBatchImagesResponse(BaseModel):
    html_info: str
    images: list[str]


class PNGInfoRequest(BaseModel):
    model_config = _REQUEST

    image: str = Field(description="base64 image")


class PNGInfoResponse(BaseModel):
    info: str = Field(description="the infotext as stored")
    items: dict[str, Any] = Field(description="the image's other text chunks")
    parameters: dict[str, Any] = Field(description="the infotext parsed: Prompt, Negative prompt, Steps, ...")


class ProgressResponse(BaseModel):
    progress: float
    eta_relative: float
    state: dict[str, Any]
    current_image: str | None = None
    textinfo: str | None = None


class SDModelItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    title: str
    model_name: str
    hash: str | None
    sha256: str | None
    filename: str
    config: str | None = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float | None = None
    need_inner_model: bool | None = None


class UpscalerItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str
    model_name: str | None = None
    model_path: str | None = None
    model_url: str | None = None
    scale: float | None = None


class LoraItem(BaseModel):
    """One LoRA file, as A1111's /sdapi/v1/loras lists it."""

    name: str = Field(description="the file name without its suffix: what <lora:NAME:WEIGHT> calls it")
    alias: str = Field(description="the training's output name (kohya's ss_output_name), else the name")
    path: str
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="the file's safetensors metadata; values holding a JSON object (ss_tag_frequency ...) decoded")


class SDVaeItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    filename: str


class MemoryResponse(BaseModel):
    ram: dict[str, Any]
    cuda: dict[str, Any]


class ScriptsList(BaseModel):
    txt2img: list[str] = Field(default_factory=list)
    img2img: list[str] = Field(default_factory=list)


class ControlNetDetectRequest(BaseModel):
    """POST /controlnet/detect, as sd-webui-controlnet takes it (-1: the preprocessor's default)."""

    model_config = _REQUEST

    controlnet_module: str = Field("none", description="a preprocessor (see /controlnet/module_list)")
    controlnet_input_images: list[str] = Field(default_factory=list, description="base64 images")
    controlnet_images: list[str] | None = Field(None, description="older name of controlnet_input_images (webuiapi)")
    controlnet_processor_res: float = Field(-1, description="the preprocessor's resolution")
    controlnet_threshold_a: float = Field(-1, description="the preprocessor's first setting")
    controlnet_threshold_b: float = Field(-1, description="the preprocessor's second setting")
    controlnet_masks: list[str] = Field(default_factory=list, description="accepted; Easel's preprocessors take none")
    low_vram: bool = Field(False, description="accepted; no effect")


class ControlNetDetectResponse(BaseModel):
    images: list[str] = Field(description="base64 PNG maps, one per input image, each at its input's size")
    info: str
