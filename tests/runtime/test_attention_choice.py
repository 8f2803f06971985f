"""--attention: the kernel chosen for the device and the installed packages, and a clear refusal for one
the device or the packages cannot run."""

import pytest

from app.errors import EaselError
from app.runtime.attention import choose_attention
from app.runtime.devices import GIB, DeviceInfo

H100 = DeviceInfo("cuda", "NVIDIA H100", 0, 80 * GIB, 79 * GIB, (9, 0), True)
RTX4090 = DeviceInfo("cuda", "NVIDIA GeForce RTX 4090", 0, 24 * GIB, 23 * GIB, (8, 9), True)
MAC = DeviceInfo("mps", "Apple M2 GPU (MPS)", None, 21 * GIB, 20 * GIB, None, False)


def only(*packages):
    return lambda name: name in packages


@pytest.mark.parametrize("device,packages,expected", [
    (H100, ("flash_attn_interface", "flash_attn"), "flash3"),
    (H100, ("flash_attn",), "flash"),
    (RTX4090, ("flash_attn_interface", "flash_attn"), "flash"),  # FlashAttention 3 is Hopper's
    (RTX4090, (), "native"),
    (MAC, ("flash_attn",), "native"),
])
def test_auto_takes_the_fastest_kernel_the_device_and_packages_allow(device, packages, expected):
    assert choose_attention("auto", device, only(*packages)).name == expected


def test_a_kernel_that_cannot_run_is_refused_saying_what_is_missing():
    with pytest.raises(EaselError, match="NVIDIA GPUs only; this device is Apple M2"):
        choose_attention("flash", MAC, only("flash_attn"))
    with pytest.raises(EaselError, match="needs the sageattention package"):
        choose_attention("sage", RTX4090, only())
    assert choose_attention("sage", RTX4090, only("sageattention")).name == "sage"
    assert choose_attention("native", MAC).name == "native"
