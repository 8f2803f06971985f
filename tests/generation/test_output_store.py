import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from app.generation.infotext import Infotext, format_infotext, read_image_metadata
from app.generation.outputs import OutputStore

WHEN = datetime(2025, 3, 14, 15, 9, 26)
INFOTEXT = format_infotext(
    Infotext.build(
        "a lighthouse at dusk, oil painting",
        "blurry",
        {"Steps": 4, "Sampler": "Euler", "CFG scale": 1.0, "Seed": 5, "Size": "16x16",
         "Model": "flux1-schnell", "Version": "easel 0.1.0"},
    )
)


def _image(shade: int = 0) -> Image.Image:
    return Image.new("RGB", (16, 16), (shade % 256, 40, 90))


def _folder(root: Path, task: str = "txt2img") -> Path:
    return root / f"{task}-images" / "2025-03-14"


def _final_files(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if not name.startswith("."))


def test_saves_in_a1111_layout_with_the_infotext_readable(tmp_path):
    path = OutputStore(tmp_path).save(_image(), task="txt2img", infotext=INFOTEXT, seed=5, when=WHEN)

    assert path == _folder(tmp_path) / "00001-5.png"
    with Image.open(path) as saved:
        metadata = read_image_metadata(saved)
    assert metadata.infotext is not None
    assert format_infotext(metadata.infotext) == INFOTEXT
    assert metadata.infotext.params["Seed"] == "5"


def test_numbers_continue_after_the_largest_in_the_folder(tmp_path):
    store = OutputStore(tmp_path)
    first = store.save(_image(), task="img2img", infotext=INFOTEXT, seed=11, when=WHEN)
    (first.parent / "00041-older.png").write_bytes(b"kept")
    (first.parent / "notes.txt").write_text("no number here")
    (first.parent / ".saving-99999.png.tmp").write_bytes(b"left by a crash")

    second = store.save(_image(), task="img2img", infotext=INFOTEXT, seed=12, when=WHEN)
    third = store.save(_image(), task="img2img", infotext=INFOTEXT, seed=12, when=WHEN)

    assert (first.name, second.name, third.name) == ("00001-11.png", "00042-12.png", "00043-12.png")


def test_an_existing_file_is_never_overwritten(tmp_path):
    folder = _folder(tmp_path)
    folder.mkdir(parents=True)
    existing = folder / "00001-5.png"
    existing.write_bytes(b"someone else's image")

    path = OutputStore(tmp_path).save(_image(), task="txt2img", infotext=INFOTEXT, seed=5, when=WHEN)

    assert existing.read_bytes() == b"someone else's image"
    assert path.name == "00002-5.png"


def test_a_pattern_without_number_adds_a_suffix_instead_of_overwriting(tmp_path):
    folder = _folder(tmp_path)
    folder.mkdir(parents=True)
    existing = folder / "5.png"
    existing.write_bytes(b"someone else's image")
    store = OutputStore(tmp_path, "[seed]")

    paths = [store.save(_image(), task="txt2img", infotext=INFOTEXT, seed=5, when=WHEN) for _ in range(2)]

    assert existing.read_bytes() == b"someone else's image"
    assert [path.name for path in paths] == ["5-1.png", "5-2.png"]


def test_a_taken_name_found_while_saving_moves_on_to_the_next_number(tmp_path, monkeypatch):
    """Another program creates the chosen name between the folder scan and the link."""
    store = OutputStore(tmp_path)
    folder = _folder(tmp_path)
    real_link = os.link

    def link_after_a_rival(source, target):
        if Path(target).name == "00001-5.png" and not Path(target).exists():
            Path(target).write_bytes(b"rival")
        return real_link(source, target)

    monkeypatch.setattr(os, "link", link_after_a_rival)
    path = store.save(_image(), task="txt2img", infotext=INFOTEXT, seed=5, when=WHEN)

    assert path.name == "00002-5.png"
    assert (folder / "00001-5.png").read_bytes() == b"rival"


def test_eight_threads_saving_forty_images_give_forty_complete_files(tmp_path):
    store = OutputStore(tmp_path)

    def save(index: int) -> Path:
        return store.save(_image(index), task="txt2img", infotext=INFOTEXT, seed=index % 3, when=WHEN)

    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(save, range(40)))

    assert len(set(paths)) == 40
    assert sorted(os.listdir(_folder(tmp_path))) == sorted(path.name for path in paths)
    assert sorted(int(path.name[:5]) for path in paths) == list(range(1, 41))
    for path in paths:
        with Image.open(path) as saved:
            saved.verify()


def _save_from_another_process(root: str, first_seed: int) -> list[str]:
    store = OutputStore(Path(root))
    return [
        str(store.save(_image(seed), task="extras", infotext=INFOTEXT, seed=seed, when=WHEN))
        for seed in range(first_seed, first_seed + 6)
    ]


def test_several_processes_saving_at_once_never_share_a_name(tmp_path):
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with context.Pool(3) as pool:
        jobs = [(str(tmp_path), 0), (str(tmp_path), 0), (str(tmp_path), 100)]
        results = pool.starmap(_save_from_another_process, jobs)

    paths = [Path(path) for batch in results for path in batch]
    assert len(set(paths)) == 18
    assert sorted(int(path.name[:5]) for path in paths) == list(range(1, 19))
    assert len(_final_files(_folder(tmp_path, "extras"))) == 18
    for path in paths:
        with Image.open(path) as saved:
            saved.verify()


def test_without_hard_links_saving_still_never_overwrites(tmp_path, monkeypatch):
    def no_hard_links(source, target):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    store = OutputStore(tmp_path, "[seed]")
    paths = [store.save(_image(i), task="upscale", infotext=INFOTEXT, seed=7, when=WHEN) for i in range(3)]

    assert [path.name for path in paths] == ["7.png", "7-1.png", "7-2.png"]
    assert _final_files(_folder(tmp_path, "upscale")) == ["7-1.png", "7-2.png", "7.png"]
    with Image.open(paths[0]) as saved:
        assert saved.getpixel((0, 0)) == (0, 40, 90)


def test_a_failure_while_writing_leaves_no_file_under_a_final_name(tmp_path):
    image = _image()

    def fail_half_way(file, *args, **kwargs):
        file.write(b"\x89PNG\r\n\x1a\n partial")
        raise OSError("disk full")

    image.save = fail_half_way
    with pytest.raises(OSError, match="disk full"):
        OutputStore(tmp_path).save(image, task="txt2img", infotext=INFOTEXT, seed=5, when=WHEN)

    assert os.listdir(_folder(tmp_path)) == []


def test_unknown_task_is_refused_with_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match="txt2img, img2img, inpaint, upscale, extras, grids"):
        OutputStore(tmp_path).save(_image(), task="../secrets", infotext=INFOTEXT, seed=1)
    assert list(tmp_path.iterdir()) == []


def test_unknown_pattern_token_is_refused_with_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match=r"\[sampler\].*\[number\], \[seed\], \[model_name\]"):
        OutputStore(tmp_path, "[number]-[sampler]")
    with pytest.raises(ValueError, match=r"\[number\] can only start"):
        OutputStore(tmp_path, "[seed]-[number]")


def test_pattern_tokens_are_filled_in(tmp_path):
    store = OutputStore(tmp_path, "[number]-[date]-[datetime]-[model_name]-[prompt_words]")

    path = store.save(
        _image(), task="grids", infotext=INFOTEXT, seed=3, model="flux1-dev",
        prompt="A lighthouse, at dusk; (oil painting:1.2) with birds over the sea at night", when=WHEN,
    )

    assert path.name == (
        "00001-2025-03-14-20250314150926-flux1-dev-"
        "A lighthouse at dusk oil painting 1 2.png"
    )


@pytest.mark.parametrize(
    ("model", "prompt"),
    [
        ("../../etc/passwd", "../../etc/passwd"),
        ("..\\..\\Windows\\System32", "C:\\boot.ini"),
        ("a\x00b\nc\td", "x" * 500),
    ],
)
def test_path_tricks_in_tokens_stay_inside_the_folder(tmp_path, model, prompt):
    store = OutputStore(tmp_path, "[model_name]/[prompt_words]")

    path = store.save(
        _image(), task="txt2img", infotext=INFOTEXT, seed=1, model=model, prompt=prompt, when=WHEN
    )

    assert path.parent == _folder(tmp_path)
    assert path.resolve().parent == _folder(tmp_path).resolve()
    assert ".." not in path.name and "/" not in path.name and "\\" not in path.name
    assert all(ord(char) >= 32 for char in path.name)
    assert len(path.stem) <= 120
    assert path.is_file()


@pytest.mark.parametrize(
    ("model", "name"), [("CON", "_CON.png"), ("nul.v2", "_nul.v2.png"), ("", "image.png")]
)
def test_names_windows_cannot_use_are_avoided(tmp_path, model, name):
    store = OutputStore(tmp_path, "[model_name]")

    path = store.save(_image(), task="txt2img", infotext=INFOTEXT, seed=1, model=model, when=WHEN)

    assert path.name == name
