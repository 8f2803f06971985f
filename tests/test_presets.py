"""Presets: the shipped ones load; a broken file is skipped with an error naming the file and field."""

import json

from app.presets import load_presets
from app.settings import PROJECT_ROOT


def test_shipped_presets_load_with_defaults_per_variant_and_styles():
    presets, errors = load_presets(PROJECT_ROOT / "presets")
    assert errors == []
    balanced = presets["Balanced"]
    assert balanced.defaults_for("flux-dev")["guidance"] == 3.5
    assert balanced.defaults_for("flux-schnell")["steps"] == 4
    styled, negative = balanced.style("Cinematic").apply("a fox", "blurry")
    assert styled.startswith("cinematic still of a fox") and negative.startswith("blurry, ")


def test_bad_presets_name_the_file_and_field(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"name": "A", "defaults": {"width": 1000}}))
    (tmp_path / "b.json").write_text(json.dumps({"name": "B", "styles": [{"name": "x", "prompt": "no placeholder"}]}))
    (tmp_path / "c.json").write_text(json.dumps({"name": "C", "variants": {"sdxl": {}}}))
    (tmp_path / "d.json").write_text("{not json")
    (tmp_path / "e.json").write_text(json.dumps({"name": "E", "colour": "red"}))
    (tmp_path / "ok.json").write_text(json.dumps({"name": "Fine"}))
    presets, errors = load_presets(tmp_path)
    assert list(presets) == ["Fine"]
    text = "\n".join(errors)
    assert "a.json: defaults.width" in text and "multiple of 16" in text
    assert "b.json: styles.0.prompt" in text and "{prompt}" in text
    assert "c.json: variants" in text and "sdxl" in text
    assert "d.json: not readable JSON" in text
    assert "e.json: colour" in text


def test_the_speed_preset_turns_first_block_cache_on_for_the_requests_it_makes():
    from dataclasses import fields
    from types import SimpleNamespace

    from app.ui.controls import GenerationControls

    presets, _ = load_presets(PROJECT_ROOT / "presets")
    assert presets["Speed"].speed.first_block_cache == 0.08
    assert presets["Balanced"].speed.first_block_cache is None and presets["Quality"].speed.first_block_cache is None
    controls = GenerationControls(**{f.name: f.name for f in fields(GenerationControls)})
    data = dict(prompt="a fox", negative_prompt="", style=None, steps=20, cfg_scale=1.0, guidance=3.5, width=512,
                height=512, seed=1, batch_count=1, batch_size=1)
    context = SimpleNamespace(preset=lambda name: presets.get(name))
    assert controls.request_fields(data, context, "Speed")["first_block_cache"] == 0.08
    assert controls.request_fields(data, context, "Balanced")["first_block_cache"] is None  # the setting decides
