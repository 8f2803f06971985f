"""Find the device Easel computes on and how much memory it has.

Nothing here imports torch at import time: the CLI, the settings and the tests import this module
cheaply, and `torch.cuda` must not be touched before the user's flags (`--device`, `CUDA_VISIBLE_DEVICES`)
are known. `detect_device` imports torch when it is called.

Memory sizes are bytes. Display uses GiB (2**30), which is what `nvidia-smi` and torch report.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

GIB = 1 << 30

DEVICE_KINDS = ("cuda", "mps", "cpu")
ALLOWED_PREFERENCES = "'cpu', 'cuda', 'cuda:N' (N = GPU index) or 'mps'"

_CUDA_WITH_INDEX = re.compile(r"cuda:(\d+)")


@dataclass(frozen=True)
class DeviceInfo:
    """What the memory planner needs to know about one device.

    `total_memory` and `free_memory` are what Easel may use: VRAM on CUDA, the Metal working-set limit on
    MPS (unified memory: the GPU may not use all of the RAM), system RAM on the CPU.
    """

    kind: str
    name: str
    index: int | None
    total_memory: int
    free_memory: int
    compute_capability: tuple[int, int] | None
    supports_bf16: bool

    def __post_init__(self) -> None:
        if self.kind not in DEVICE_KINDS:
            raise ValueError(f"device kind must be one of {', '.join(DEVICE_KINDS)}; got {self.kind!r}")

    @property
    def torch_device(self) -> str:
        """The string torch takes: 'cuda:0', 'mps' or 'cpu'."""
        if self.kind == "cuda":
            return f"cuda:{self.index or 0}"
        return self.kind

    @property
    def has_streams(self) -> bool:
        """CUDA streams overlap the next block's copy with this block's compute; MPS has no such streams."""
        return self.kind == "cuda"

    @property
    def memory_label(self) -> str:
        """What the memory is called for this kind of device, for messages."""
        return {"cuda": "VRAM", "mps": "unified memory", "cpu": "RAM"}[self.kind]

    def describe(self) -> str:
        """One line for the log, e.g. 'NVIDIA H100 80GB HBM3 · 79.1 GiB VRAM (78.5 free) · cc 9.0 · bf16'."""
        parts = [
            self.name,
            f"{self.total_memory / GIB:.1f} GiB {self.memory_label} ({self.free_memory / GIB:.1f} free)",
        ]
        if self.compute_capability is not None:
            major, minor = self.compute_capability
            parts.append(f"cc {major}.{minor}")
        parts.append("bf16" if self.supports_bf16 else "no bf16")
        return " · ".join(parts)


def detect_device(prefer: str | None = None) -> DeviceInfo:
    """The device to compute on: `prefer` if given, else the first CUDA GPU, else MPS, else the CPU.

    `prefer` is 'cpu', 'cuda', 'cuda:N' or 'mps' (any case). A value that is not one of these, or a device
    that is not available here, raises ValueError naming what is allowed or what is available.
    """
    import torch  # lazily: see the module docstring

    kind, index = _parse_preference(prefer)
    available = _available_devices(torch)
    if kind is None:
        kind, index = _best_available(available)
    _check_available(kind, index, available, prefer)
    if kind == "cuda":
        return _cuda_info(torch, index or 0)
    if kind == "mps":
        return _mps_info(torch)
    return _cpu_info()


def _parse_preference(prefer: str | None) -> tuple[str | None, int | None]:
    """('cuda', 1) for 'cuda:1', ('cpu', None) for 'cpu', (None, None) for no preference."""
    if prefer is None or not prefer.strip():
        return None, None
    value = prefer.strip().lower()
    if value in DEVICE_KINDS:
        return value, (0 if value == "cuda" else None)
    match = _CUDA_WITH_INDEX.fullmatch(value)
    if match:
        return "cuda", int(match.group(1))
    raise ValueError(f"unknown device {prefer!r}: use {ALLOWED_PREFERENCES}")


def _available_devices(torch: Any) -> list[str]:
    """Torch device strings usable here, best first: 'cuda:0', 'cuda:1', …, 'mps', 'cpu'."""
    found = []
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def _best_available(available: list[str]) -> tuple[str, int | None]:
    kind, _, index = available[0].partition(":")
    return kind, (int(index) if index else None)


def _check_available(kind: str, index: int | None, available: list[str], prefer: str | None) -> None:
    wanted = f"cuda:{index}" if kind == "cuda" else kind
    if wanted not in available:
        raise ValueError(f"device {prefer!r} is not available here; available: {', '.join(available)}")


def read_memory(device: DeviceInfo) -> DeviceInfo:
    """`device` with its free and total memory read now (planning a load needs today's figure, not the
    one seen at start). Every reading shows what this process holds as used, as any other program's use:

      CUDA  the driver's free memory (`torch.cuda.mem_get_info`) plus the blocks torch's caching allocator
            keeps for this process but no tensor uses (they are ours to reuse, as ComfyUI counts them)
      MPS   Metal's recommended working set minus the memory live tensors take
      CPU   available RAM (/proc/meminfo's MemAvailable, or the platform's equivalent)

    Imports torch (lazily) for CUDA and MPS only.
    """
    free, total = _MEMORY_READERS[device.kind](device.index or 0)
    return replace(device, free_memory=free, total_memory=total)


def _cuda_memory(index: int) -> tuple[int, int]:
    """(free, total) of one GPU, counting torch's cached but unused blocks as free."""
    import torch

    free, total = torch.cuda.mem_get_info(index)
    cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
    return int(free) + max(int(cached), 0), int(total)


def _mps_memory(index: int) -> tuple[int, int]:
    """(free, total) of the Apple GPU: its budget is Metal's recommended working set, not the whole RAM."""
    import torch

    total = _mps_working_set(torch)
    in_use = int(getattr(torch.mps, "current_allocated_memory", lambda: 0)())
    return max(total - in_use, 0), total


def _cpu_memory(index: int) -> tuple[int, int]:
    """(available, total) RAM; `index` is unused (one CPU device)."""
    total, available = system_memory()
    return available, total


_MEMORY_READERS = {"cuda": _cuda_memory, "mps": _mps_memory, "cpu": _cpu_memory}


def _cuda_info(torch: Any, index: int) -> DeviceInfo:
    free, total = _cuda_memory(index)
    capability = tuple(torch.cuda.get_device_capability(index))
    return DeviceInfo(
        kind="cuda",
        name=torch.cuda.get_device_name(index),
        index=index,
        total_memory=int(total),
        free_memory=int(free),
        compute_capability=capability,
        supports_bf16=_cuda_supports_bf16(torch, capability),
    )


def _cuda_supports_bf16(torch: Any, capability: tuple[int, int]) -> bool:
    """Native bf16: compute capability 8.0 (Ampere) and newer, or any ROCm GPU.

    This is `torch.cuda.is_bf16_supported(including_emulation=False)` for one given GPU. The plain call
    answers True on Turing too (bf16 can be emulated there, slowly) and only looks at the current device.
    """
    if getattr(torch.version, "hip", None):
        return True
    return capability >= (8, 0)


def _mps_info(torch: Any) -> DeviceInfo:
    """Apple GPU (unified memory: the GPU may not use all of the RAM)."""
    free, total = _mps_memory(0)
    return DeviceInfo(
        kind="mps",
        name=_apple_chip_name(),
        index=None,
        total_memory=total,
        free_memory=free,
        compute_capability=None,
        supports_bf16=_mps_supports_bf16(torch),
    )


def _mps_working_set(torch: Any) -> int:
    """`torch.mps.recommended_max_memory()` (torch >= 2.4), else the machine's RAM."""
    recommended = getattr(torch.mps, "recommended_max_memory", None)
    if recommended is not None:
        return int(recommended())
    return system_memory()[0]


def _mps_supports_bf16(torch: Any) -> bool:
    """bf16 on MPS needs macOS 14 (Sonoma) and a torch that knows it; older setups get fp16."""
    is_newer = getattr(torch.backends.mps, "is_macos_or_newer", None)
    if is_newer is not None:
        return bool(is_newer(14, 0))
    try:
        torch.ones(1, dtype=torch.bfloat16, device="mps")
    except (RuntimeError, TypeError):
        return False
    return True


def _apple_chip_name() -> str:
    try:
        out = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "Apple GPU (MPS)"
    return f"{out.stdout.strip() or 'Apple'} GPU (MPS)"


def _cpu_info() -> DeviceInfo:
    available, total = _cpu_memory(0)
    return DeviceInfo(
        kind="cpu",
        name=_cpu_name(),
        index=None,
        total_memory=total,
        free_memory=available,
        compute_capability=None,
        # torch runs bf16 on any CPU (natively with AVX512-BF16/AMX, emulated and slower elsewhere).
        supports_bf16=True,
    )


def _cpu_name() -> str:
    model = _cpuinfo_model_name(Path("/proc/cpuinfo"))
    return model or platform.processor() or platform.machine() or "CPU"


def _cpuinfo_model_name(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def system_memory() -> tuple[int, int]:
    """(total, available) system RAM in bytes, without psutil.

    Linux: /proc/meminfo (MemAvailable counts reclaimable caches, unlike MemFree). Other POSIX systems
    (macOS): os.sysconf, where the available figure may be missing and then equals the total. Windows:
    GlobalMemoryStatusEx.
    """
    meminfo = parse_meminfo(Path("/proc/meminfo"))
    if meminfo is not None:
        return meminfo
    if sys.platform == "win32":
        return _windows_memory()
    return _sysconf_memory()


def parse_meminfo(path: Path) -> tuple[int, int] | None:
    """(MemTotal, MemAvailable) in bytes from a /proc/meminfo file; None if it cannot be read."""
    try:
        text = path.read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        number = value.split()
        if number and number[0].isdigit():
            fields[key.strip()] = int(number[0]) * 1024  # the file counts kB (KiB)
    if "MemTotal" not in fields:
        return None
    available = fields.get("MemAvailable", fields.get("MemFree", fields["MemTotal"]))
    return fields["MemTotal"], available


def _sysconf_memory() -> tuple[int, int]:
    page = os.sysconf("SC_PAGE_SIZE")
    total = page * os.sysconf("SC_PHYS_PAGES")
    try:
        available = page * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError):  # not defined on macOS
        available = total
    return total, available


def _windows_memory() -> tuple[int, int]:
    import ctypes

    class MemoryStatusEx(ctypes.Structure):
        _fields_ = [
            ("dwLength", ctypes.c_ulong),
            ("dwMemoryLoad", ctypes.c_ulong),
            ("ullTotalPhys", ctypes.c_ulonglong),
            ("ullAvailPhys", ctypes.c_ulonglong),
            ("ullTotalPageFile", ctypes.c_ulonglong),
            ("ullAvailPageFile", ctypes.c_ulonglong),
            ("ullTotalVirtual", ctypes.c_ulonglong),
            ("ullAvailVirtual", ctypes.c_ulonglong),
            ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
        ]

    status = MemoryStatusEx()
    status.dwLength = ctypes.sizeof(MemoryStatusEx)
    ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))
    return int(status.ullTotalPhys), int(status.ullAvailPhys)
