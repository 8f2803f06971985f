"""UI pieces that need no browser: auth parsing, settings saved for the next start, infotext -> fields."""

import json

import pytest

from app.settings import load_settings, save_settings_file
from app.ui.launch import parse_gradio_auth


def test_gradio_auth_from_flag_and_file(tmp_path):
    (tmp_path / "auth.txt").write_text("carol:c1\n\ndave:d2,erin:e3\n")
    pairs = parse_gradio_auth("alice:a1,bob:b:2", tmp_path / "auth.txt")
    assert pairs == [("alice", "a1"), ("bob", "b:2"), ("carol", "c1"), ("dave", "d2"), ("erin", "e3")]
    with pytest.raises(ValueError, match="'mallory' is not user:password"):
        parse_gradio_auth("mallory", None)
    with pytest.raises(ValueError, match="cannot read"):
        parse_gradio_auth(None, tmp_path / "missing.txt")




def test_saved_settings_apply_on_the_next_start_and_flags_still_win(tmp_path):
    path = tmp_path / "settings.json"
    save_settings_file(path, {"filename_pattern": "[number]-[model_name]", "medvram": True, "preview_every": 2})
    save_settings_file(path, {"preview_every": 5})  # merges, keeps the rest
    assert json.loads(path.read_text())["filename_pattern"] == "[number]-[model_name]"
    s = load_settings({"settings_file": path}, env={})
    assert (s.filename_pattern, s.medvram, s.preview_every) == ("[number]-[model_name]", True, 5)
    s = load_settings({"settings_file": path, "medvram": False}, env={"EASEL_PREVIEW_EVERY": "9"})
    assert s.medvram is False and s.preview_every == 9
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        save_settings_file(path, {"colour": "red"})


def test_infotext_fills_the_txt2img_fields():
    from types import SimpleNamespace

    from app.generation.infotext import parse_infotext
    from app.ui.app import infotext_to_controls

    c = SimpleNamespace(prompt="p", negative_prompt="n", steps="s", cfg_scale="c", guidance="g", seed="seed",
                        width="w", height="h")
    info = parse_infotext("a castle\nNegative prompt: fog\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, "
                          "Size: 512x768, Model: flux1-dev, Distilled CFG Scale: 3.5")
    update = infotext_to_controls(info, c)
    assert update == {"p": "a castle", "n": "fog", "s": 20, "c": 7.0, "g": 3.5, "seed": 5, "w": 512, "h": 768}


def test_hires_keys_in_the_infotext_turn_the_hires_fix_on_with_their_values_and_their_absence_turns_it_off():
    from app.generation.infotext import parse_infotext
    from app.ui.hires_controls import HiresControls

    h = HiresControls(enable="on", upscaler="up", scale="scale", steps="steps", strength="dn", resize_x="rx",
                      resize_y="ry")
    info = parse_infotext("a castle\nSteps: 20, Seed: 5, Size: 512x768, Denoising strength: 0.45, "
                          "Hires upscale: 1.5, Hires steps: 8, Hires upscaler: Latent (bicubic)")
    assert h.infotext_update(info) == {"on": True, "scale": 1.5, "steps": 8, "dn": 0.45, "rx": 0, "ry": 0,
                                       "up": "Latent (bicubic)"}
    resized = parse_infotext("a castle\nSteps: 20, Denoising strength: 0.6, Hires resize: 1024x1536, "
                             "Hires upscaler: Lanczos")
    assert h.infotext_update(resized) == {"on": True, "dn": 0.6, "rx": 1024, "ry": 1536, "up": "Lanczos"}
    assert h.infotext_update(parse_infotext("a castle\nSteps: 20, Seed: 5, Size: 512x768")) == {"on": False}
    restored = h.infotext_update(info)
    data = {"on": True, "up": restored["up"], "scale": restored["scale"], "steps": restored["steps"],
            "dn": restored["dn"], "rx": 0, "ry": 0}
    assert h.stage_fields(data) == {"kind": "hires", "upscaler": "Latent (bicubic)", "scale": 1.5, "steps": 8,
                                    "strength": 0.45, "resize_x": 0, "resize_y": 0}
    assert h.stage_fields({**data, "on": False}) is None
