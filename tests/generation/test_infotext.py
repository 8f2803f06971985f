import io
import json
import re

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from app.generation.infotext import (
    Infotext,
    format_infotext,
    parse_infotext,
    png_info_for,
    read_image_metadata,
)

FORGE_FLUX = """\
a photo of a woman standing in a field of sunflowers, golden hour,
detailed skin texture, 85mm lens <lora:detail:0.8>
Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, \
Seed: 1234567890, Size: 896x1152, Model hash: 275ef623d3, Model: flux1-dev-bnb-nf4-v2, \
Lora hashes: "detail: abc123def456", Version: f2.0.1v1.10.1-previous-313-g8a042934, \
Module 1: ae, Module 2: clip_l, Module 3: t5xxl_fp16"""

A1111_SDXL_HIRES = """\
masterpiece, best quality, (1girl:1.2), solo, looking at viewer,
cherry blossoms, (watercolor:0.8)
Negative prompt: (worst quality, low quality:1.4), lowres,
bad anatomy, watermark
Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3141592653, \
Size: 832x1216, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, VAE hash: 235745af8d, \
VAE: sdxl_vae.safetensors, Denoising strength: 0.4, Clip skip: 2, Hires upscale: 1.5, \
Hires steps: 15, Hires upscaler: 4x-UltraSharp, \
Lora hashes: "add_detail: 7c6bad76eb54, film: 0a1b2c3d4e5f", TI hashes: "EasyNegative: c74b4e810b03", \
Version: v1.10.1"""

# Dynamic Prompts appends Template lines after the parameters line; Windows line endings.
A1111_INPAINT_DYNAMIC_PROMPTS = (
    "a red car on a mountain road, \r\n"
    "Negative prompt: blurry\r\n"
    "Steps: 30, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 5.5, Seed: 42, "
    "Size: 1024x1024, Model hash: e6bb9ea85b, Model: juggernautXL_v9, Denoising strength: 0.75, "
    'Mask blur: 4, Inpaint area: Only masked, Masked content: original, ADetailer prompt: "detailed '
    'face, sharp eyes", ADetailer confidence: 0.3, Version: v1.9.4\r\n'
    "Template: a {red|blue} car on a mountain road, \r\n"
    "Negative Template: blurry\r\n"
)


def test_build_orders_keys_like_a1111_and_writes_numbers_as_a1111_does():
    info = Infotext.build(
        "a cat",
        values={
            "Version": "easel 0.1.0",
            "Distilled CFG Scale": 3.5,
            "Seed": 1,
            "Denoising strength": 0.75,
            "CFG scale": 7.0,
            "Steps": 20,
            "Model": "flux1-schnell",
            "Clip skip": None,
            "Size": "512x512",
            "Sampler": "Euler",
        },
    )

    assert list(info.params.items()) == [
        ("Steps", "20"),
        ("Sampler", "Euler"),
        ("CFG scale", "7"),
        ("Seed", "1"),
        ("Size", "512x512"),
        ("Model", "flux1-schnell"),
        ("Denoising strength", "0.75"),
        ("Distilled CFG Scale", "3.5"),
        ("Version", "easel 0.1.0"),
    ]


def test_build_accepts_keyword_values_too():
    info = Infotext.build("a cat", values={"CFG scale": 1.5}, Steps=4, Seed=9)

    assert info.params == {"Steps": "4", "CFG scale": "1.5", "Seed": "9"}


def test_format_matches_the_a1111_layout():
    info = Infotext.build(
        'a cat, "best quality"',
        "ugly, blurry",
        {
            "Steps": 20,
            "Sampler": "Euler",
            "Schedule type": "Simple",
            "CFG scale": 7,
            "Seed": 1,
            "Size": "512x512",
            "Model hash": "6ce0161689",
            "Model": "flux1-schnell",
            "Denoising strength": 0.75,
            "Lora hashes": "detail: abc123",
            "Version": "easel 0.1.0",
        },
    )

    assert format_infotext(info) == (
        'a cat, "best quality"\n'
        "Negative prompt: ugly, blurry\n"
        "Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 7, Seed: 1, Size: 512x512, "
        "Model hash: 6ce0161689, Model: flux1-schnell, Denoising strength: 0.75, "
        'Lora hashes: "detail: abc123", Version: easel 0.1.0'
    )


def test_format_leaves_out_an_empty_negative_prompt_line():
    text = format_infotext(Infotext.build("a cat", Steps=1, Seed=2, Sampler="Euler"))

    assert text == "a cat\nSteps: 1, Sampler: Euler, Seed: 2"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("Euler a", "Euler a"),
        ("a, b", '"a, b"'),
        ("ratio 2:3", '"ratio 2:3"'),
        ("two\nlines", '"two\\nlines"'),
        ('"quoted"', '"\\"quoted\\""'),
        ('say "hi"', 'say "hi"'),
    ],
)
def test_values_are_json_quoted_only_when_needed(value, written):
    text = format_infotext(Infotext.build("p", Steps=1, Seed=2, Extra=value))

    assert text.endswith(f"Extra: {written}")


def test_reads_a_forge_flux_infotext():
    info = parse_infotext(FORGE_FLUX)

    assert info.prompt == (
        "a photo of a woman standing in a field of sunflowers, golden hour,\n"
        "detailed skin texture, 85mm lens <lora:detail:0.8>"
    )
    assert info.negative_prompt == ""
    assert info.params["Distilled CFG Scale"] == "3.5"
    assert info.params["Schedule type"] == "Simple"
    assert info.params["Lora hashes"] == "detail: abc123def456"
    assert info.params["Module 1"] == "ae"
    assert info.params["Module 3"] == "t5xxl_fp16"
    assert info.params["Size"] == "896x1152"
    assert list(info.params) == [
        "Steps", "Sampler", "Schedule type", "CFG scale", "Distilled CFG Scale", "Seed", "Size",
        "Model hash", "Model", "Lora hashes", "Version", "Module 1", "Module 2", "Module 3",
    ]


def test_reads_an_a1111_infotext_with_multi_line_prompts_and_quoted_hashes():
    info = parse_infotext(A1111_SDXL_HIRES)

    assert info.prompt.splitlines() == [
        "masterpiece, best quality, (1girl:1.2), solo, looking at viewer,",
        "cherry blossoms, (watercolor:0.8)",
    ]
    assert info.negative_prompt == "(worst quality, low quality:1.4), lowres,\nbad anatomy, watermark"
    assert info.params["Lora hashes"] == "add_detail: 7c6bad76eb54, film: 0a1b2c3d4e5f"
    assert info.params["TI hashes"] == "EasyNegative: c74b4e810b03"
    assert info.params["Hires upscale"] == "1.5"
    assert info.params["Hires upscaler"] == "4x-UltraSharp"
    assert info.params["Clip skip"] == "2"
    assert list(info.params)[-1] == "Version"


def test_reads_an_inpaint_infotext_with_template_lines_after_the_parameters():
    info = parse_infotext(A1111_INPAINT_DYNAMIC_PROMPTS)

    assert info.prompt == "a red car on a mountain road,"
    assert info.negative_prompt == "blurry"
    assert info.params["Mask blur"] == "4"
    assert info.params["Inpaint area"] == "Only masked"
    assert info.params["Masked content"] == "original"
    assert info.params["ADetailer prompt"] == "detailed face, sharp eyes"
    assert info.params["Version"] == "v1.9.4"
    assert "Template" not in info.params


def test_text_without_a_parameters_line_is_all_prompt():
    text = "(best quality:1.2), (masterpiece:1.1)\nsunset over the sea, Steps: 20"

    info = parse_infotext(text)

    assert info == Infotext(prompt=text)


def test_a_prompt_line_with_many_weights_before_the_last_line_is_not_taken_for_parameters():
    text = "(best quality:1.2), (masterpiece:1.1), (detailed:0.9)\na lighthouse at night"

    assert parse_infotext(text).prompt == text
    assert parse_infotext(text).params == {}


@pytest.mark.parametrize(
    "text",
    ["", "   \n\n", "Negative prompt:", ": , :", '"', 'a: "b', "a\nNegative prompt:\nx, bb: 2, cc: 3"],
)
def test_odd_texts_parse_without_error(text):
    info = parse_infotext(text)

    assert parse_infotext(format_infotext(info)) == info


def test_infotexts_that_would_read_back_differently_are_refused():
    with pytest.raises(ValueError, match="Negative prompt"):
        Infotext(prompt="a cat\nNegative prompt: dog")
    with pytest.raises(ValueError, match="at least 3"):
        Infotext(prompt="a cat", params={"Steps": "20"})
    with pytest.raises(ValueError, match="key"):
        Infotext(prompt="a cat", params={"Steps": "1", "Seed": "2", "bad, key": "3"})
    with pytest.raises(ValueError, match="reads as generation parameters"):
        Infotext(prompt="Steps: 20, Sampler: Euler, Seed: 1")


def test_prompt_lines_are_stripped_as_a1111_reads_them():
    assert Infotext(prompt="  a cat, \n\tsitting  \n\n").prompt == "a cat,\nsitting"


def a1111_reader(text: str) -> tuple[str, str, dict[str, str]]:
    """The core of A1111's parse_generation_parameters (modules/infotext_utils.py)."""
    re_param = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
    prompt, negative, done_with_prompt, params = "", "", False, {}
    *lines, lastline = text.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    for key, value in re_param.findall(lastline):
        if value[:1] == '"' and value[-1:] == '"':
            value = json.loads(value)
        params[key] = value
    return prompt, negative, params


def test_a1111_reads_what_easel_writes():
    info = Infotext.build(
        "a castle on a hill,\nmisty morning",
        "blurry, lowres",
        {"Steps": 4, "Sampler": "Euler", "CFG scale": 1.0, "Seed": 7, "Size": "1024x768",
         "Distilled CFG Scale": 3.5, "Lora hashes": "detail: abc123", "Version": "easel 0.1.0"},
    )

    prompt, negative, params = a1111_reader(format_infotext(info))

    assert (prompt, negative, params) == (info.prompt, info.negative_prompt, info.params)


_TRICKY = st.sampled_from(
    [",", ":", ", ", ": ", "\n", "\r\n", '"', "\\", " ", "\t", "\u2028", "\x85", "{", "x",
     "Negative prompt:", "Template: t", "Steps: 1", "x, bb: 2, cc: 3", "(word:1.2)"]
)
_TEXTS = st.lists(st.one_of(st.text(max_size=6), _TRICKY), max_size=8).map("".join)
_KEYS = st.one_of(
    st.from_regex(r"\w[\w \-/]{0,8}[\w\-/]", fullmatch=True),
    st.sampled_from(["Steps", "CFG scale", "Lora hashes", "Negative prompt", "Template", "Module 1"]),
)
_PARAMS = st.one_of(st.just({}), st.dictionaries(_KEYS, _TEXTS, min_size=3, max_size=6))


@st.composite
def infotexts(draw) -> Infotext:
    try:
        return Infotext(draw(_TEXTS), draw(_TEXTS), draw(_PARAMS))
    except ValueError:
        reject()


@settings(max_examples=300, deadline=None)
@given(infotexts())
def test_every_infotext_reads_back_unchanged(info):
    assert parse_infotext(format_infotext(info)) == info


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _TEXTS))
def test_any_text_parses_and_rewrites_stably(text):
    info = parse_infotext(text)

    assert parse_infotext(format_infotext(info)) == info


def _saved_and_reopened(pnginfo: PngInfo) -> Image.Image:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG", pnginfo=pnginfo)
    buffer.seek(0)
    return Image.open(buffer)


def _png_info(chunks: dict[str, str]) -> PngInfo:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    return info


def test_reads_the_parameters_chunk_of_a_png():
    image = _saved_and_reopened(png_info_for(A1111_SDXL_HIRES))

    metadata = read_image_metadata(image)

    assert metadata.infotext == parse_infotext(A1111_SDXL_HIRES)
    assert metadata.raw == {"parameters": A1111_SDXL_HIRES}
    assert metadata.comfy_prompt is None and metadata.comfy_workflow is None


def test_non_latin_prompts_survive_the_png_chunk():
    text = "桜の木の下の猫, 水彩\nSteps: 20, Sampler: Euler, Seed: 3"

    metadata = read_image_metadata(_saved_and_reopened(png_info_for(text)))

    assert metadata.infotext is not None
    assert metadata.infotext.prompt == "桜の木の下の猫, 水彩"


def test_reads_comfyui_chunks_and_tolerates_broken_json():
    prompt = {"3": {"class_type": "KSampler", "inputs": {"seed": 5}}}
    image = _saved_and_reopened(_png_info({"prompt": json.dumps(prompt), "workflow": "{not json"}))

    metadata = read_image_metadata(image)

    assert metadata.comfy_prompt == prompt
    assert metadata.comfy_workflow is None
    assert metadata.infotext is None
    assert metadata.raw["workflow"] == "{not json"


@pytest.mark.parametrize(
    ("fmt", "encoding"), [("JPEG", "utf-16-be"), ("WEBP", "utf-16-be"), ("JPEG", "utf-16-le")]
)
def test_reads_the_exif_user_comment_a1111_writes_in_jpeg_and_webp(fmt, encoding):
    exif = Image.Exif()
    comment = b"UNICODE\x00" + FORGE_FLUX.encode(encoding)
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = comment
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format=fmt, exif=exif.tobytes())
    buffer.seek(0)

    metadata = read_image_metadata(Image.open(buffer))

    assert metadata.infotext == parse_infotext(FORGE_FLUX)


def test_an_image_without_metadata_has_no_infotext():
    metadata = read_image_metadata(Image.new("RGB", (4, 4)))

    assert metadata.infotext is None
    assert metadata.raw == {}
