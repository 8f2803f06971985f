"""settings.json has one owner: writers in threads and in other processes never lose each other's keys,
a broken file is reported (and kept aside), not fatal."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.extensions.state import read_disabled, set_disabled, write_disabled
from app.settings import PROJECT_ROOT, load_settings, save_settings_file
from app.settings_file import SettingsFile, SettingsFileError

WAIT_S = 120
CHILD = """
import sys
from pathlib import Path
from app.settings_file import SettingsFile

path, me, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = SettingsFile(path)

def bump(data):
    data["total"] = data.get("total", 0) + 1
    data[me] = data.get(me, 0) + 1

print("ready", flush=True)
sys.stdin.readline()  # the parent releases every writer at once
for _ in range(count):
    store.update(bump)
"""


def bump(key):
    def change(data):
        data["total"] = data.get("total", 0) + 1
        data[key] = data.get(key, 0) + 1
    return change


def test_threads_with_their_own_objects_lose_no_update(tmp_path):
    path, writers, count = tmp_path / "settings.json", 4, 40
    start = threading.Barrier(writers)
    errors = []

    def write(name):
        store = SettingsFile(path)  # one object each: only the file lock can keep them apart
        try:
            start.wait(WAIT_S)
            for _ in range(count):
                store.update(bump(name))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert not errors and not any(t.is_alive() for t in threads)
    data = json.loads(path.read_text())
    assert data == {"total": writers * count, **{f"t{i}": count for i in range(writers)}}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_processes_lose_no_update(tmp_path):
    path, writers, count = tmp_path / "settings.json", 3, 30
    path.write_text(json.dumps({"outputs_dir": "/keep/me"}))
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), f"p{i}", str(count)], cwd=PROJECT_ROOT,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for i in range(writers)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            assert child.wait(WAIT_S) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.stdin.close()
            child.stdout.close()
    data = json.loads(path.read_text())
    assert data == {"outputs_dir": "/keep/me", "total": writers * count, **{f"p{i}": count for i in range(writers)}}


def test_every_writer_keeps_the_others_keys(tmp_path):
    path = tmp_path / "settings.json"
    save_settings_file(path, {"filename_pattern": "[number]-[model_name]", "medvram": True})
    write_disabled(path, {"xyz-plot"})
    SettingsFile(path).update(lambda data: data.setdefault("a1111_options", {}).update(send_seed=False))
    assert set_disabled(path, "hello", disabled=True) == {"xyz-plot", "hello"}
    save_settings_file(path, {"preview_every": 5})
    assert set_disabled(path, "xyz-plot", disabled=False) == {"hello"}
    assert json.loads(path.read_text()) == {"filename_pattern": "[number]-[model_name]", "medvram": True,
                                            "preview_every": 5, "disabled_extensions": ["hello"],
                                            "a1111_options": {"send_seed": False}}
    assert read_disabled(path) == {"hello"}


def test_concurrent_enable_and_disable_lose_no_name(tmp_path):
    path, names = tmp_path / "settings.json", [f"ext{i}" for i in range(6)]
    start = threading.Barrier(len(names))

    def disable(name):
        start.wait(WAIT_S)
        set_disabled(path, name, disabled=True)

    threads = [threading.Thread(target=disable, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert read_disabled(path) == set(names)


@pytest.mark.parametrize("broken", ["{not json", "[1, 2]", '{"preview_every": NaN}'])
def test_a_broken_file_is_reported_not_fatal_and_kept_aside(tmp_path, caplog, broken):
    path = tmp_path / "settings.json"
    path.write_text(broken)
    assert load_settings({"settings_file": path}, env={}).preview_every == 4  # the defaults
    assert read_disabled(path) == set()
    assert str(path) in caplog.text
    save_settings_file(path, {"preview_every": 6})
    assert json.loads(path.read_text()) == {"preview_every": 6}
    assert (tmp_path / "settings.json.broken").read_text() == broken  # a hand edit is not lost
    assert "settings.json.broken" in caplog.text


def test_temp_files_of_a_killed_writer_are_removed(tmp_path):
    path = tmp_path / "settings.json"
    (tmp_path / ".settings.json.4242.tmp").write_text('{"half": ')
    (tmp_path / ".settings.json.abc123.tmp").write_text("")
    (tmp_path / "unrelated.tmp").write_text("mine")
    save_settings_file(path, {"preview_every": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".settings.json.lock", "settings.json", "unrelated.tmp"]


def test_a_file_that_cannot_be_written_is_a_clear_error(tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    path = tmp_path / "not-a-folder" / "settings.json"
    with pytest.raises(SettingsFileError, match=f"cannot write the settings file {path}"):
        save_settings_file(path, {"preview_every": 2})


def test_a_failed_change_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "settings.json"
    save_settings_file(path, {"preview_every": 2})

    def fail(data):
        data["preview_every"] = 99
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        SettingsFile(path).update(fail)
    assert json.loads(Path(path).read_text()) == {"preview_every": 2}
