"""The catalog's reading of a pickled weights file agrees with torch's own weights-only load, and never
unpickles anything."""

import pickle
import random
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from tinyfiles import Trap

from app.catalog.pickle_check import _allowed, weights_only_problem


def _state(**extra):
    return OrderedDict(conv_first=torch.zeros(2, 3, dtype=torch.float16), bias=torch.ones(2), **extra)


def _files(marker):
    """name -> a way to write it, covering what torch.save and hand-made files put in .pth files."""
    trap = Trap(marker)
    return {
        "zip": lambda p: torch.save(_state(), p),
        "legacy": lambda p: torch.save({"params_ema": _state()}, p, _use_new_zipfile_serialization=False),
        "parameter-and-plain-values": lambda p: torch.save(
            {"w": torch.nn.Parameter(torch.zeros(2)), "n": 3, "name": "x", "s": {1}}, p),
        "bfloat16-and-fp8": lambda p: torch.save(
            {"a": torch.zeros(2, dtype=torch.bfloat16), "b": torch.zeros(2, dtype=torch.float8_e4m3fn)}, p),
        "trap-zip": lambda p: torch.save({"a": trap}, p),
        "trap-legacy": lambda p: torch.save({"a": trap}, p, _use_new_zipfile_serialization=False),
        "trap-raw-pickle": lambda p: p.write_bytes(pickle.dumps({"conv_first.weight": trap})),
        "numpy-scalar": lambda p: torch.save({"a": np.float32(1)}, p),
        "protocol-4": lambda p: torch.save(_state(), p, pickle_protocol=4),
        "random-bytes": lambda p: p.write_bytes(b"\x00" + random.Random(0).randbytes(2047)),  # no pickle opcode first
        "truncated": lambda p: (torch.save(_state(), p, _use_new_zipfile_serialization=False),
                                p.write_bytes(p.read_bytes()[:90])),
        "empty": lambda p: p.write_bytes(b""),
    }


def test_the_catalog_accepts_exactly_what_torch_loads_weights_only(tmp_path):
    marker = tmp_path / "unpickled"
    verdicts = {}
    for name, write in _files(marker).items():
        path = tmp_path / f"{name}.pth"
        write(path)
        problem = weights_only_problem(path)
        assert not marker.exists(), f"the catalog unpickled {name}"
        try:
            with warnings.catch_warnings():  # torch warns about the protocol-4 file before refusing it
                warnings.simplefilter("ignore")
                torch.load(path, map_location="cpu", weights_only=True)
            loads = True
        except Exception:
            loads = False
        verdicts[name] = (problem is None, loads)
        assert not marker.exists(), f"torch unpickled {name}"
    assert all(ours == torch_says for ours, torch_says in verdicts.values()), verdicts
    assert [n for n, (ok, _) in verdicts.items() if ok] == ["zip", "legacy", "parameter-and-plain-values",
                                                            "bfloat16-and-fp8"]


def test_the_reason_names_what_the_pickle_would_import(tmp_path):
    marker = tmp_path / "unpickled"
    files = _files(marker)
    reasons = {}
    for name in ("trap-zip", "trap-raw-pickle", "numpy-scalar", "protocol-4", "random-bytes", "truncated"):
        files[name](tmp_path / f"{name}.pth")
        reasons[name] = weights_only_problem(tmp_path / f"{name}.pth")
    opener = f"{open.__module__}.open"
    assert reasons["trap-zip"] == (f"pickled code: it imports {opener}, which a weights-only load refuses; "
                                   "use a .safetensors copy")
    assert reasons["trap-raw-pickle"].startswith(f"pickled code: it imports {opener},")
    assert "numpy" in reasons["numpy-scalar"]
    assert reasons["protocol-4"].startswith("a pickle a weights-only load cannot read (opcodes FRAME")
    assert reasons["random-bytes"] == "not a PyTorch weights file (not a pickle stream)"
    assert reasons["truncated"] == "not a PyTorch weights file (the stream ends early)"


def test_every_global_torch_allows_is_allowed_and_nothing_else_of_note():
    unpickler = pytest.importorskip("torch._weights_only_unpickler")
    allowed = list(unpickler._get_allowed_globals())
    assert allowed and [name for name in allowed if not _allowed(name)] == []
    for name in ("builtins.exec", "builtins.eval", "os.system", "posix.system", "subprocess.Popen", "torch.load",
                 "torch.serialization.load", "torch.storage._load_from_bytes", "builtins.getattr"):
        assert not _allowed(name), name
