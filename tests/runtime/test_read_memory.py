"""read_memory: a device's free memory read again, as each load needs it (fake torch readings for GPUs)."""

import pytest
import torch

from app.runtime.devices import GIB, DeviceInfo, read_memory, system_memory

STALE_CUDA = DeviceInfo("cuda", "RTX 4090", 0, 24 * GIB, 23 * GIB, (8, 9), True)
STALE_MAC = DeviceInfo("mps", "Apple M2 GPU (MPS)", None, 21 * GIB, 21 * GIB, None, True)


def test_cpu_reads_available_ram_now_not_the_figure_seen_at_start():
    stale = DeviceInfo("cpu", "CPU", None, 1, 1, None, True)
    fresh = read_memory(stale)
    total, _ = system_memory()
    assert fresh.total_memory == total
    assert 0 < fresh.free_memory <= fresh.total_memory
    assert (fresh.kind, fresh.name, fresh.supports_bf16) == ("cpu", "CPU", True)


@pytest.fixture
def busy_gpu(monkeypatch):
    """24 GiB card: the driver sees 5 GiB free; torch caches 2 GiB this process freed but keeps."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (5 * GIB, 24 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda i: 12 * GIB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda i: 10 * GIB)


def test_cuda_counts_torchs_cached_blocks_as_free(busy_gpu):
    fresh = read_memory(STALE_CUDA)
    assert (fresh.free_memory, fresh.total_memory) == (7 * GIB, 24 * GIB)
    assert (fresh.name, fresh.index, fresh.compute_capability) == ("RTX 4090", 0, (8, 9))


def test_mps_is_the_working_set_less_live_tensors(monkeypatch):
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 21 * GIB)
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: 6 * GIB)
    fresh = read_memory(STALE_MAC)
    assert (fresh.free_memory, fresh.total_memory) == (15 * GIB, 21 * GIB)
