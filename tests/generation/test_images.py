"""Input preparation: resize modes, masks from painted layers, masked-content fills, pasting back."""

import numpy as np
from PIL import Image

from app.generation.images import fill_masked, fit_image, paste_unmasked, prepare_mask


def test_resize_modes_give_the_size_asked_and_differ_as_a1111s():
    wide = Image.new("RGB", (200, 100), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 50, 100))  # blue left quarter
    stretched = fit_image(wide, 128, 128, "just-resize")
    cropped = fit_image(wide, 128, 128, "crop-and-resize")
    filled = fit_image(wide, 128, 128, "resize-and-fill")
    assert stretched.size == cropped.size == filled.size == (128, 128)
    assert stretched.getpixel((5, 64))[2] > 200  # stretching keeps the blue edge
    assert cropped.getpixel((5, 64))[0] > 200  # cropping the centre cuts most of it away
    assert filled.getpixel((64, 64))[0] > 200


def test_mask_from_a_painted_rgba_layer_uses_its_alpha_and_blurs():
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (16, 16, 48, 48))
    mask = prepare_mask(layer, 64, 64, "just-resize", blur=4)
    assert mask.mode == "L" and mask.getpixel((32, 32)) == 255 and mask.getpixel((2, 2)) == 0
    assert 0 < mask.getpixel((16, 32)) < 255  # the blurred edge


def test_fill_and_latent_noise_replace_only_the_masked_area():
    image = Image.new("RGB", (64, 64), (0, 200, 0))
    image.paste((250, 0, 0), (24, 24, 40, 40))  # a red square under the mask
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (20, 20, 44, 44))
    src = np.asarray(image).astype(int)
    for mode in ("fill", "latent-noise"):
        out = np.asarray(fill_masked(image, mask, mode, seed=1)).astype(int)
        assert np.array_equal(out[:18], src[:18])  # outside: untouched
        assert abs(out[32, 32] - src[32, 32]).sum() > 100  # the red square is gone
    filled = np.asarray(fill_masked(image, mask, "fill", seed=1)).astype(int)
    assert filled[32, 32, 1] > filled[32, 32, 0]  # filled from the green around it
    assert fill_masked(image, mask, "original", seed=1) is image


def test_paste_unmasked_restores_the_original_outside_the_mask():
    original = Image.new("RGB", (32, 32), (10, 20, 30))
    generated = Image.new("RGB", (32, 32), (200, 200, 200))
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    out = paste_unmasked(generated, original, mask)
    assert out.getpixel((1, 1)) == (10, 20, 30) and out.getpixel((16, 16)) == (200, 200, 200)
