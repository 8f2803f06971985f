import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.runtime.devices import GIB, DeviceInfo, detect_device, parse_meminfo, system_memory

REPO = Path(__file__).resolve().parents[2]


def test_importing_runtime_modules_does_not_import_torch():
    code = (
        "import sys\n"
        "import app.runtime.devices, app.runtime.memory, app.runtime.weights\n"
        "from app.runtime.memory import ModelFootprint, plan_memory\n"
        "from app.runtime.devices import DeviceInfo\n"
        "d = DeviceInfo('cuda', 'x', 0, 8 << 30, 8 << 30, (8, 6), True)\n"
        "plan_memory(d, ModelFootprint.for_variant('flux-dev')).describe()\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'accelerate') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_describe_cuda():
    h100 = DeviceInfo("cuda", "NVIDIA H100 80GB HBM3", 0, int(79.1 * GIB), int(78.5 * GIB), (9, 0), True)
    assert h100.describe() == "NVIDIA H100 80GB HBM3 · 79.1 GiB VRAM (78.5 free) · cc 9.0 · bf16"


def test_describe_mps_and_cpu():
    mac = DeviceInfo("mps", "Apple M2 GPU (MPS)", None, 21 * GIB, 20 * GIB, None, False)
    cpu = DeviceInfo("cpu", "AMD Ryzen 9", None, 64 * GIB, 60 * GIB, None, True)
    assert mac.describe() == "Apple M2 GPU (MPS) · 21.0 GiB unified memory (20.0 free) · no bf16"
    assert cpu.describe() == "AMD Ryzen 9 · 64.0 GiB RAM (60.0 free) · bf16"


@pytest.mark.parametrize(
    "kind, index, expected", [("cuda", 0, "cuda:0"), ("cuda", 1, "cuda:1"), ("mps", None, "mps"), ("cpu", None, "cpu")]
)
def test_torch_device(kind, index, expected):
    assert DeviceInfo(kind, "x", index, GIB, GIB, None, True).torch_device == expected


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="cuda, mps, cpu"):
        DeviceInfo("tpu", "x", None, GIB, GIB, None, True)


def test_detect_cpu_reads_system_memory():
    device = detect_device("cpu")
    total, _ = system_memory()
    assert device.kind == "cpu" and device.torch_device == "cpu"
    assert device.total_memory == total
    assert 0 < device.free_memory <= device.total_memory
    assert device.supports_bf16 and device.compute_capability is None


@pytest.mark.parametrize("value", ["tpu", "cuda:x", "gpu", "cuda0", "xla:0"])
def test_unknown_preference_names_the_allowed_values(value):
    with pytest.raises(ValueError, match=r"'cpu', 'cuda', 'cuda:N'.*'mps'"):
        detect_device(value)


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("value", ["cuda", "CUDA:0", "mps"])
def test_unavailable_device_names_what_is_available(no_accelerator, value):
    with pytest.raises(ValueError, match="not available here; available: cpu$"):
        detect_device(value)


def test_no_preference_falls_back_to_cpu(no_accelerator):
    assert detect_device().kind == "cpu"
    assert detect_device("  ").kind == "cpu"


@pytest.fixture
def two_gpus(monkeypatch):
    """A Turing card at index 0 and an Ada card at index 1, as torch.cuda would report them."""
    cards = {
        0: ("NVIDIA GeForce RTX 2060", (7, 5), 6 * GIB, int(5.6 * GIB)),
        1: ("NVIDIA GeForce RTX 4090", (8, 9), 24 * GIB, int(23.5 * GIB)),
    }
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: cards[i][0])
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: cards[i][1])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (cards[i][3], cards[i][2]))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_cuda_is_preferred_and_bf16_follows_compute_capability(two_gpus):
    turing = detect_device()
    assert (turing.kind, turing.index, turing.torch_device) == ("cuda", 0, "cuda:0")
    assert turing.name == "NVIDIA GeForce RTX 2060"
    assert (turing.total_memory, turing.free_memory) == (6 * GIB, int(5.6 * GIB))
    assert turing.compute_capability == (7, 5)
    assert turing.supports_bf16 is False  # emulated bf16 does not count

    ada = detect_device("cuda:1")
    assert (ada.index, ada.torch_device, ada.compute_capability) == (1, "cuda:1", (8, 9))
    assert ada.supports_bf16 is True


def test_missing_gpu_index_lists_the_gpus(two_gpus):
    with pytest.raises(ValueError, match="available: cuda:0, cuda:1, cpu"):
        detect_device("cuda:2")


def test_rocm_gpus_support_bf16(two_gpus, monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert detect_device("cuda:0").supports_bf16 is True


@pytest.fixture
def apple_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 21 * GIB)
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: GIB)


def test_mps_budget_is_the_recommended_working_set(apple_gpu, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: (major, minor) <= (14, 0))
    device = detect_device()
    assert (device.kind, device.torch_device, device.index) == ("mps", "mps", None)
    assert (device.total_memory, device.free_memory) == (21 * GIB, 20 * GIB)
    assert device.supports_bf16 is True
    assert "MPS" in device.name


def test_mps_before_macos_14_has_no_bf16(apple_gpu, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: (major, minor) <= (13, 5))
    assert detect_device("mps").supports_bf16 is False


def test_mps_without_recommended_max_falls_back_to_ram(apple_gpu, monkeypatch):
    monkeypatch.delattr(torch.mps, "recommended_max_memory")
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: True)
    assert detect_device("mps").total_memory == system_memory()[0]


def test_parse_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32768000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n")
    assert parse_meminfo(meminfo) == (32768000 * 1024, 20000000 * 1024)


def test_parse_meminfo_without_available_uses_free(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 2048 kB\nMemFree: 1024 kB\n")
    assert parse_meminfo(meminfo) == (2048 * 1024, 1024 * 1024)


def test_parse_meminfo_missing_or_garbled(tmp_path):
    assert parse_meminfo(tmp_path / "absent") is None
    garbled = tmp_path / "meminfo"
    garbled.write_text("nothing useful\n")
    assert parse_meminfo(garbled) is None
