"""apply_memory_plan on real tiny diffusers pipelines (CPU here; bench/ and GPU checks cover CUDA)."""

import types

import pytest
import torch
from diffusers import FluxPipeline
from diffusers.hooks.group_offloading import _is_group_offload_enabled

from app.runtime.devices import GIB, DeviceInfo
from app.runtime.memory import (
    MemoryOverrides,
    MemoryPlan,
    ModelFootprint,
    apply_memory_plan,
    plan_memory,
    supports_attention_slicing,
    t5_component_name,
    torch_dtype,
)

CPU = DeviceInfo("cpu", "test CPU", None, 16 * GIB, 12 * GIB, None, True)
FAKE_CUDA = DeviceInfo("cuda", "fake 8 GB", 0, 8 * GIB, 7 * GIB, (8, 6), True)


def hand_plan(placement: str, **choices) -> MemoryPlan:
    fields = dict(t5_on_cpu=False, vae_tiling=False, vae_slicing=False, attention_slicing=False)
    fields.update(choices)
    return MemoryPlan(dtype="float32", placement=placement, reserve_bytes=GIB, device_kind="cpu", **fields)


def test_cpu_plan_with_vae_tiling(tiny_flux, generate):
    plan = plan_memory(CPU, ModelFootprint.for_variant("sd3.5-medium"), MemoryOverrides(vae_tiling=True))
    assert (plan.placement, plan.vae_tiling) == ("cpu", True)
    done = apply_memory_plan(tiny_flux, plan, CPU)
    assert tiny_flux.vae.use_tiling is True
    assert tiny_flux.vae.use_slicing is plan.vae_slicing
    assert done[0] == "pipe.to('cpu')"
    assert "vae.enable_tiling()" in done
    assert all(p.device.type == "cpu" for p in tiny_flux.transformer.parameters())
    assert generate(tiny_flux).shape == (1, 3, 64, 64)


def test_tactics_left_off_are_not_applied(tiny_flux):
    done = apply_memory_plan(tiny_flux, hand_plan("cpu"), CPU)
    assert done == ["pipe.to('cpu')"]
    assert (tiny_flux.vae.use_tiling, tiny_flux.vae.use_slicing) == (False, False)


def test_vae_slicing(tiny_flux):
    done = apply_memory_plan(tiny_flux, hand_plan("cpu", vae_slicing=True), CPU)
    assert tiny_flux.vae.use_slicing is True
    assert "vae.enable_slicing()" in done


def test_attention_slicing_is_skipped_on_flux_with_a_log_line(tiny_flux):
    processors_before = {k: type(v) for k, v in tiny_flux.transformer.attn_processors.items()}
    done = apply_memory_plan(tiny_flux, hand_plan("cpu", attention_slicing=True), CPU)
    assert supports_attention_slicing(tiny_flux) is False
    assert any(line.startswith("attention slicing skipped: FluxPipeline") for line in done)
    assert {k: type(v) for k, v in tiny_flux.transformer.attn_processors.items()} == processors_before


def test_attention_slicing_is_applied_where_a_component_supports_it():
    class SliceableUNet(torch.nn.Module):
        def set_attention_slice(self, size):
            self.slice_size = size

    class Pipe:
        def __init__(self):
            self.unet = SliceableUNet()
            self.components = {"unet": self.unet}

        def to(self, device):
            return self

        def enable_attention_slicing(self, slice_size="auto"):
            self.unet.set_attention_slice(slice_size)

    pipe = Pipe()
    plan = hand_plan("gpu", attention_slicing=True)
    assert supports_attention_slicing(pipe) is True
    assert "pipe.enable_attention_slicing()" in apply_memory_plan(pipe, plan, CPU)
    assert pipe.unet.slice_size == "auto"


def test_group_offload_runs_a_real_generation(tiny_flux_with_encoders, generate):
    pipe = tiny_flux_with_encoders
    expected = generate(pipe)
    done = apply_memory_plan(pipe, hand_plan("group_offload"), CPU)
    assert _is_group_offload_enabled(pipe.transformer)
    assert _is_group_offload_enabled(pipe.text_encoder) and _is_group_offload_enabled(pipe.text_encoder_2)
    assert not _is_group_offload_enabled(pipe.vae)  # small: placed on the device as it is
    assert "transformer.enable_group_offload(block_level, num_blocks_per_group=1, use_stream=False)" in done
    assert "apply_group_offloading(text_encoder_2, leaf_level, use_stream=False)" in done
    assert torch.allclose(generate(pipe), expected, atol=1e-5)


def test_model_offload_uses_the_pipeline_call(tiny_flux, generate):
    expected = generate(tiny_flux)
    done = apply_memory_plan(tiny_flux, hand_plan("model_offload"), CPU)
    assert done == ["pipe.enable_model_cpu_offload(device='cpu')"]
    assert hasattr(tiny_flux.transformer, "_hf_hook")
    assert torch.allclose(generate(tiny_flux), expected, atol=1e-5)


def test_sequential_offload_uses_the_pipeline_call(tiny_flux):
    done = apply_memory_plan(tiny_flux, hand_plan("sequential_offload"), CPU)
    assert done == ["pipe.enable_sequential_cpu_offload(device='cpu')"]
    # accelerate keeps the weights on the meta device and streams them in layer by layer
    assert tiny_flux.transformer.proj_out._hf_hook.offload is True
    assert tiny_flux.transformer.proj_out.weight.device.type == "meta"


@pytest.mark.parametrize("placement", ["model_offload", "sequential_offload"])
def test_pipeline_wide_offload_refuses_to_keep_t5_on_cpu(tiny_flux_with_encoders, placement):
    with pytest.raises(ValueError, match="cannot keep T5 on the CPU"):
        apply_memory_plan(tiny_flux_with_encoders, hand_plan(placement, t5_on_cpu=True), CPU)


def test_t5_kept_on_cpu_behind_a_device_hook(tiny_flux_with_encoders):
    pipe = tiny_flux_with_encoders
    done = apply_memory_plan(pipe, hand_plan("gpu", t5_on_cpu=True), CPU)
    hook = pipe.text_encoder_2._hf_hook
    assert (str(hook.execution_device), hook.io_same_device) == ("cpu", True)
    assert "text_encoder_2 kept on CPU (inputs moved to it, outputs moved back)" in done
    assert "transformer.to('cpu')" in done and "text_encoder_2.to('cpu')" not in done
    assert pipe._exclude_from_cpu_offload == ["text_encoder_2"]
    assert FluxPipeline._exclude_from_cpu_offload == []  # the class-wide list is left alone
    assert pipe.text_encoder_2(torch.tensor([[1, 2, 3]]))[0].shape == (1, 3, 32)


def test_t5_on_cpu_without_a_t5_is_noted(tiny_flux):
    done = apply_memory_plan(tiny_flux, hand_plan("gpu", t5_on_cpu=True), CPU)
    assert done == ["pipe.to('cpu')", "T5 on CPU: this pipeline has no T5 encoder, nothing to keep"]


def test_t5_component_name(tiny_flux, tiny_flux_with_encoders):
    assert t5_component_name(tiny_flux_with_encoders) == "text_encoder_2"
    assert t5_component_name(tiny_flux) is None


class _Recorder(torch.nn.Module):
    """Stands in for a component on a machine without CUDA: records the calls instead of moving weights."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def to(self, *args, **kwargs):
        self.calls.append(("to", args, kwargs))
        return self


class _DiffusersModel(_Recorder):
    _supports_group_offloading = True

    def enable_group_offload(self, **kwargs):
        self.calls.append(("enable_group_offload", (), kwargs))

    def enable_tiling(self):
        self.calls.append(("enable_tiling", (), {}))

    def enable_slicing(self):
        self.calls.append(("enable_slicing", (), {}))


class T5EncoderModel(_Recorder):
    pass


def test_group_offload_on_cuda_streams_blocks_and_leaves_t5_on_cpu(monkeypatch):
    leaf_calls = []
    monkeypatch.setattr("diffusers.hooks.apply_group_offloading", lambda module, **kw: leaf_calls.append(kw))
    monkeypatch.setattr("accelerate.hooks.add_hook_to_module", lambda module, hook: setattr(module, "hook", hook))
    parts = {"transformer": _DiffusersModel(), "vae": _DiffusersModel(), "text_encoder": _Recorder(),
             "text_encoder_2": T5EncoderModel()}  # fmt: skip
    pipe = types.SimpleNamespace(components=parts, _exclude_from_cpu_offload=[], **parts)
    plan = plan_memory(FAKE_CUDA, ModelFootprint.for_variant("flux-dev"))
    assert (plan.placement, plan.t5_on_cpu) == ("group_offload", True)

    done = apply_memory_plan(pipe, plan, FAKE_CUDA)

    (name, _, kwargs), *_ = parts["transformer"].calls
    assert name == "enable_group_offload"
    assert kwargs["offload_type"] == "block_level" and kwargs["num_blocks_per_group"] == 1
    assert kwargs["use_stream"] is True
    assert (kwargs["onload_device"], kwargs["offload_device"]) == (torch.device("cuda:0"), torch.device("cpu"))
    assert parts["vae"].calls == [("to", ("cuda:0",), {}), ("enable_tiling", (), {}), ("enable_slicing", (), {})]
    assert [(c["offload_type"], c["use_stream"]) for c in leaf_calls] == [("leaf_level", True)]
    assert parts["text_encoder_2"].calls == [("to", ("cpu",), {})]
    assert str(parts["text_encoder_2"].hook.execution_device) == "cpu"
    assert pipe._exclude_from_cpu_offload == ["text_encoder_2"]
    assert "vae.to('cuda:0')" in done


def test_torch_dtype():
    assert torch_dtype(hand_plan("cpu")) is torch.float32
    plan = plan_memory(FAKE_CUDA, ModelFootprint.for_variant("flux-dev"))
    assert torch_dtype(plan) is torch.bfloat16
