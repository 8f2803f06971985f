"""Upscale then refine tile by tile: every pixel covered, the size kept, each tile an img2img job."""

import numpy as np
from PIL import Image

from app.engine.engine import Engine
from app.settings import Settings
from app.upscale.refine import plan_tiles, refine_tiled


def test_tiles_cover_the_picture_with_overlap():
    tiles = plan_tiles(300, 200, tile=128, overlap=32)
    covered = np.zeros((200, 300), bool)
    for t in tiles:
        assert t.width == 128 and t.height == 128 and t.x + t.width <= 300 and t.y + t.height <= 200
        covered[t.y:t.y + t.height, t.x:t.x + t.width] = True
    assert covered.all()
    assert plan_tiles(64, 64, tile=1024, overlap=64)[0].width == 64  # one tile when the picture is small


def test_refine_runs_one_img2img_per_tile_and_keeps_the_size(demo_models_dir, tmp_path):
    engine = Engine(Settings(models_dir=demo_models_dir, outputs_dir=tmp_path, device="cpu",
                             settings_file=tmp_path / "s.json"))
    calls = []

    def generate(request):
        calls.append((request.task, request.width, request.height, request.strength))
        return engine.generate(request, timeout=60)

    try:
        image = Image.new("RGB", (192, 128), (120, 80, 200))
        out = refine_tiled(image, generate, prompt="a field", model="easel-demo-flux", strength=0.3, steps=2, seed=1,
                           tile=128, overlap=32)
    finally:
        engine.close()
    assert out.size == (192, 128)
    assert len(calls) == len(plan_tiles(192, 128, 128, 32)) == 2
    assert all(c == ("img2img", 128, 128, 0.3) for c in calls)
    assert np.abs(np.asarray(out).astype(int) - np.asarray(image).astype(int)).mean() > 1  # it was refined
