"""Multi-stage jobs on the shipped demo models, judged by pixels: the hires fix (a 64 px draft upscaled
to 128 px and denoised again keeps the draft's shape colour and background, and the second pass really
repaints: it is not the draft merely resized); a refine with the other demo model keeps the seed's
picture and its colours; a tiled upscale repaints every tile with no seam at the tile borders; an
outpaint keeps the picture's pixels exactly and extends its background."""

import numpy as np
import pytest
from PIL import Image

from app.demo.shapes import COLOURS, SPECS, background_colour, nearest_colour, shape_colour
from app.engine.engine import Engine
from app.generation.outpaint import Outpaint, outpaint_fields
from app.generation.request import validate_request
from app.settings import PROJECT_ROOT, Settings
from app.upscale.refine import plan_tiles

MODELS = {"flux": "easel-demo-shapes-flux", "sd3": "easel-demo-shapes-sd3"}
SEEDS = range(10)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-hires")
    eng = Engine(Settings(models_dir=PROJECT_ROOT / "models" / "demo", outputs_dir=out, device="cpu",
                          demo_models=False, settings_file=out / "s.json", hf_cache=out / "no-hf-cache",
                          max_loaded_models=2))
    yield eng
    eng.close()


def make(engine, family, caption, seed, **extra):
    req = validate_request(prompt=caption, model=MODELS[family], width=64, height=64, seed=seed, save=False,
                           **extra)
    return engine.generate(req, timeout=120).images[0]


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_hires_64_to_128_keeps_the_drafts_colours_and_repaints_at_the_new_size(engine, family):
    kept, repainted = 0, 0
    for seed in SEEDS:
        spec = SPECS[(seed * 7) % len(SPECS)]
        draft = make(engine, family, spec.caption, seed)
        final = make(engine, family, spec.caption, seed, stages=[{"kind": "hires", "scale": 2.0, "strength": 0.5}])
        assert final.size == (128, 128)
        kept += (shape_colour(final, spec), background_colour(final)) == (shape_colour(draft, spec),
                                                                          background_colour(draft))
        resized = np.asarray(draft.resize((128, 128), Image.LANCZOS)).astype(int)
        repainted += np.abs(np.asarray(final).astype(int) - resized).mean() > 5.0
    assert kept / len(SEEDS) >= 0.9, f"the draft's colours kept in {kept}/{len(SEEDS)} seeds"
    assert repainted / len(SEEDS) >= 0.9, f"the second pass changed the picture in {repainted}/{len(SEEDS)} seeds"


def test_refine_with_the_other_demo_model_keeps_the_colours_and_changes_the_pixels(engine):
    first, second = "flux", "sd3"
    kept, changed = 0, 0
    for seed in SEEDS:
        spec = SPECS[(seed * 5) % len(SPECS)]
        draft = make(engine, first, spec.caption, seed)
        final = make(engine, first, spec.caption, seed, stages=[{"kind": "refine", "model": MODELS[second],
                                                                  "strength": 0.5}])
        kept += (shape_colour(final, spec), background_colour(final)) == (shape_colour(draft, spec),
                                                                          background_colour(draft))
        changed += np.abs(np.asarray(final).astype(int) - np.asarray(draft).astype(int)).mean() > 2.0
    assert kept / len(SEEDS) >= 0.9, f"the draft's colours kept in {kept}/{len(SEEDS)} seeds"
    assert changed / len(SEEDS) >= 0.9, f"the refine changed the picture in {changed}/{len(SEEDS)} seeds"


def border_jumps(picture: np.ndarray, starts: list[int]) -> tuple[float, float]:
    """(the largest mean jump between neighbouring columns or rows at a tile border, the picture's median)."""
    pixels = picture.astype(int)
    across_columns = np.abs(np.diff(pixels, axis=1)).mean(axis=(0, 2))  # [x - 1]: between columns x - 1 and x
    across_rows = np.abs(np.diff(pixels, axis=0)).mean(axis=(1, 2))
    at_borders = [jumps[x - 1] for x in starts for jumps in (across_columns, across_rows)]
    return max(at_borders), float(np.median(np.concatenate([across_columns, across_rows])))


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_tiled_upscale_128_to_512_repaints_every_tile_with_no_seam_at_the_borders(engine, family):
    spec = SPECS[3]
    draft = make(engine, family, spec.caption, 1).resize((128, 128), Image.LANCZOS)

    def tiled(overlap):
        stage = {"kind": "tiled_upscale", "scale": 4, "tile_width": 128, "tile_height": 128, "overlap": overlap}
        request = validate_request(task="img2img", image=draft, strength=0, prompt=spec.caption, model=MODELS[family],
                                   seed=1, save=False, stages=[stage])
        return np.asarray(engine.generate(request, timeout=300).images[0])

    blended, abutting = tiled(32), tiled(0)  # abutting tiles: a hard paste, where seams must show
    assert blended.shape == (512, 512, 3)
    lanczos = np.asarray(draft.resize((512, 512), Image.LANCZOS)).astype(int)
    for tile in plan_tiles(512, 512, 128, 32):
        inner = (slice(tile.y + 32, tile.y + 96), slice(tile.x + 32, tile.x + 96))
        assert np.abs(blended[inner].astype(int) - lanczos[inner]).mean() > 2, f"tile {tile} was not repainted"
    seam, median = border_jumps(blended, sorted({t.x for t in plan_tiles(512, 512, 128, 32)} - {0}))
    hard_seam, hard_median = border_jumps(abutting, [128, 256, 384])
    assert hard_seam > 4 * hard_median, "abutting tiles should show their borders (the measure sees seams)"
    assert seam <= 2.5 * median, f"a jump of {seam:.1f} at a tile border; {median:.1f} is the picture's median"


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_outpaint_right_keeps_the_picture_exactly_and_extends_its_background(engine, family):
    exact, extended = 0, 0
    for seed in SEEDS:
        spec = SPECS[(seed * 3) % len(SPECS)]
        draft = make(engine, family, spec.caption, seed)
        fields = outpaint_fields(draft, Outpaint(right=64, feather=16))
        request = validate_request(task="inpaint", prompt=spec.caption, model=MODELS[family], seed=seed,
                                   strength=0.9, save=False, **fields)
        out = np.asarray(engine.generate(request, timeout=120).images[0])
        assert out.shape == (64, 128, 3)
        exact += np.array_equal(out[:, :64], np.asarray(draft))
        beyond_feather = np.median(out[:, 96:].reshape(-1, 3), axis=0)
        extended += nearest_colour(beyond_feather, COLOURS) == background_colour(draft)
    assert exact == len(SEEDS), f"the picture kept exactly in {exact}/{len(SEEDS)} seeds"
    assert extended / len(SEEDS) >= 0.9, f"the background extended in {extended}/{len(SEEDS)} seeds"
