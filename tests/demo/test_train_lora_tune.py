"""The sampler-tuning stage's parts: the colour loss reads the regions the judge reads, and the noise
levels walked are the pipeline's own."""

from __future__ import annotations

import numpy as np
import pytest

from app.demo.shapes import ShapeSpec, draw, to_tensor
from app.demo.train_lora_eval import load_demo
from app.demo.train_lora_tune import colour_loss, sampler_sigmas
from app.settings import PROJECT_ROOT

DEMO = PROJECT_ROOT / "models" / "demo"


def test_colour_loss_is_small_for_the_caption_and_large_for_another_colour():
    rng = np.random.default_rng(0)
    purple = ShapeSpec("circle", "purple", "white")
    pictures = to_tensor([draw(purple, 64, rng), draw(ShapeSpec("circle", "blue", "white"), 64, rng)])
    right, wrong = (colour_loss(pictures[i: i + 1], [purple]).item() for i in range(2))
    assert right < 0.01
    assert wrong > 0.1


def test_colour_loss_reads_the_background_ring():
    rng = np.random.default_rng(1)
    spec = ShapeSpec("square", "yellow", "purple")
    on_blue = to_tensor([draw(ShapeSpec("square", "yellow", "blue"), 64, rng)])
    assert colour_loss(on_blue, [spec]).item() > 0.1
    assert colour_loss(to_tensor([draw(spec, 64, rng)]), [spec]).item() < 0.01


@pytest.mark.parametrize("model, steps", [("easel-demo-shapes-flux", 4), ("easel-demo-shapes-sd3", 16)])
def test_sampler_sigmas_are_the_pipelines_own(model, steps):
    pipe, _ = load_demo(DEMO / model, "cpu")
    sigmas = sampler_sigmas(pipe, "flux" if model.endswith("flux") else "sd3", steps)
    pipe.scheduler.set_timesteps(steps, **({"sigmas": np.linspace(1.0, 1 / steps, steps).tolist()}
                                            if model.endswith("flux") else {}))
    assert sigmas == pytest.approx([float(s) for s in pipe.scheduler.sigmas])
    assert len(sigmas) == steps + 1 and sigmas[0] == pytest.approx(1.0) and sigmas[-1] == 0.0


def test_the_kept_round_is_the_one_whose_weaker_figure_is_nearer_its_target():
    from app.demo.train_lora import round_score
    from app.demo.train_lora_config import LoraEval

    ev = LoraEval()
    purple_everywhere = {"met": False, "with": {"headline": 1.0, "control": 1 / 24}}
    balanced = {"met": False, "with": {"headline": 0.7, "control": 0.9}}
    met = {"met": True, "with": {"headline": 0.9, "control": 0.8}}
    ranked = sorted([purple_everywhere, met, balanced], key=lambda j: round_score(j, ev), reverse=True)
    assert ranked == [met, balanced, purple_everywhere]
