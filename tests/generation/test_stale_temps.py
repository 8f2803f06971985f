"""Half-written images of a killed process are removed at the next start; a live process's are kept."""

import json
import os
import subprocess
import sys
import threading
import time

from app.engine.factory import build_engine
from app.generation.model_hash import HashCache
from app.settings import Settings


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_start_removes_temp_files_of_dead_processes_only(tmp_path):
    day = tmp_path / "out" / "txt2img-images" / "2026-12-01"
    day.mkdir(parents=True)
    killed = day / f".saving-{dead_pid()}-abc.png.tmp"
    live = day / f".saving-{os.getpid()}-def.png.tmp"
    old_unowned = day / ".saving-k2j3.png.tmp"
    new_unowned = day / ".saving-z9y8.png.tmp"
    image = day / "00001-1.png"
    for path in (killed, live, old_unowned, new_unowned, image):
        path.write_bytes(b"x")
    hours_ago = time.time() - 3 * 3600
    os.utime(old_unowned, (hours_ago, hours_ago))

    engine = build_engine(Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "out",
                                   settings_file=tmp_path / "s.json", demo_models=False), load_extensions=False)
    engine.close()
    assert sorted(p.name for p in day.iterdir()) == sorted([live.name, new_unowned.name, image.name])


def test_one_hash_cache_keeps_every_hash_written_from_many_threads(tmp_path):
    files = []
    for i in range(24):
        files.append(tmp_path / f"w{i}.safetensors")
        files[-1].write_bytes(os.urandom(64) + bytes([i]))
    cache = HashCache(tmp_path / ".easel-hashes.json")
    threads = [threading.Thread(target=lambda part=files[k::4]: [cache.sha256(f) for f in part]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(json.loads((tmp_path / ".easel-hashes.json").read_text())) == 24  # what the next start reads
    assert not list(tmp_path.glob(".easel-hashes.json.*"))  # no temp file left behind
