"""Drawing the grid: cells in rows and columns, X labels on top, Y labels on the left, a Z title."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

PAD = 6
BACKGROUND, INK = "white", "black"


def _font(size: int = 14):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def draw_grid(cells: list[list[Image.Image]], x_labels: list[str], y_labels: list[str],
              title: str = "") -> Image.Image:
    """`cells[row][col]`; every cell is shown in a slot as large as the largest cell."""
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def size(text: str) -> tuple[int, int]:
        left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    cell_w = max(im.width for row in cells for im in row)
    cell_h = max(im.height for row in cells for im in row)
    line_h = max(size(t)[1] for t in [*x_labels, *y_labels, "Ag"]) + 2 * PAD
    top = line_h * (2 if title else 1)
    left = max((size(t)[0] for t in y_labels if t), default=0) + 2 * PAD if any(y_labels) else 0
    grid = Image.new("RGB", (left + cell_w * len(x_labels), top + cell_h * len(y_labels)), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((left + PAD, PAD), title, fill=INK, font=font)
    for col, text in enumerate(x_labels):
        w, _ = size(text)
        draw.text((left + col * cell_w + (cell_w - w) // 2, top - line_h + PAD), text, fill=INK, font=font)
    for row, text in enumerate(y_labels):
        _, h = size(text)
        draw.text((PAD, top + row * cell_h + (cell_h - h) // 2), text, fill=INK, font=font)
    for row, images in enumerate(cells):
        for col, im in enumerate(images):
            x = left + col * cell_w + (cell_w - im.width) // 2
            y = top + row * cell_h + (cell_h - im.height) // 2
            grid.paste(im.convert("RGB"), (x, y))
    return grid
