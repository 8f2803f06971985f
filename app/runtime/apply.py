"""`apply_memory_plan(pipe, plan, device)`: carry a plan out with diffusers' public calls, one small
function per tactic (like `diffusers/hooks/*.py`), returning what it did for the log.

`set_vae_tactics` switches VAE tiling and slicing for one job on a pipeline already placed: unlike the
placement, they can be turned off again.
"""

from __future__ import annotations

from typing import Any

from app.runtime.devices import DeviceInfo
from app.runtime.plan import MemoryPlan


def torch_dtype(plan: MemoryPlan) -> Any:
    """The torch dtype the engine loads the pipeline in (`dtype=` of from_pretrained/from_single_file)."""
    import torch

    return getattr(torch, plan.dtype)


def apply_memory_plan(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    """Carry out `plan` on a freshly loaded pipeline; returns one line per action for the log.

    The pipeline must be loaded in the plan's dtype with its weights on the CPU (the engine loads that
    way), and the plan is applied once: diffusers has no public call that removes group offloading, so a
    different plan means reloading. Do not call `pipe.to()` afterwards; it would undo the placement.

    With `plan.t5_on_cpu`, T5 runs on the CPU behind a hook that moves its inputs there and its output
    back, so the pipeline's own `encode_prompt` works unchanged (FLUX and SD3 alike). Engines that cache
    prompt embeddings may call `pipe.encode_prompt(...)` themselves: the result lands on the execution
    device as usual.
    """
    done = _place(pipe, plan, device)
    done += set_vae_tactics(pipe, tiling=plan.vae_tiling, slicing=plan.vae_slicing)
    done += _apply_attention_slicing(pipe, plan)
    return done


def _place(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    tactics = {
        "gpu": _place_on_device,
        "model_offload": _enable_model_offload,
        "group_offload": _enable_group_offload,
        "sequential_offload": _enable_sequential_offload,
        "cpu": _place_on_cpu,
    }
    return tactics[plan.placement](pipe, plan, device)


def _place_on_device(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    t5_name = t5_component_name(pipe) if plan.t5_on_cpu else None
    if t5_name is None:
        pipe.to(device.torch_device)
        return [f"pipe.to({device.torch_device!r})"] + _no_t5_note(plan)
    done = _keep_on_cpu(pipe, t5_name)
    for name, module in _modules(pipe):
        if name != t5_name:
            module.to(device.torch_device)
            done.append(f"{name}.to({device.torch_device!r})")
    return done


def _place_on_cpu(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    pipe.to("cpu")
    return ["pipe.to('cpu')"]


def _enable_model_offload(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    _refuse_t5_on_cpu(plan)
    pipe.enable_model_cpu_offload(device=device.torch_device)
    return [f"pipe.enable_model_cpu_offload(device={device.torch_device!r})"]


def _enable_sequential_offload(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    _refuse_t5_on_cpu(plan)
    pipe.enable_sequential_cpu_offload(device=device.torch_device)
    return [f"pipe.enable_sequential_cpu_offload(device={device.torch_device!r})"]


def _refuse_t5_on_cpu(plan: MemoryPlan) -> None:
    if plan.t5_on_cpu:
        raise ValueError(
            f"{plan.placement} cannot keep T5 on the CPU: diffusers offloads every pipeline component "
            "(and `_exclude_from_cpu_offload` pins a component to the accelerator, not the CPU)"
        )


def _enable_group_offload(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    """Per component: diffusers models by block, transformers text encoders by layer, VAE resident.

    The pipeline-wide `pipe.enable_group_offload` would give every component the same settings, but
    block-level offload of a text encoder (transformers models have no top-level block list) moves the
    whole encoder at once, and T5 may have to stay on the CPU.
    """
    t5_name = t5_component_name(pipe) if plan.t5_on_cpu else None
    done = [] if t5_name else _no_t5_note(plan)
    for name, module in _modules(pipe):
        if name == t5_name:
            done += _keep_on_cpu(pipe, name)
        elif name == "vae":
            # 0.17 GB: streaming it saves nothing, and diffusers warns that streamed offload of a VAE
            # misbehaves when its first pass is tiled.
            module.to(device.torch_device)
            done.append(f"vae.to({device.torch_device!r})")
        elif _supports_block_offload(module):
            done.append(_group_offload_blocks(name, module, device))
        else:
            done.append(_group_offload_leaves(name, module, device))
    return done


def _supports_block_offload(module: Any) -> bool:
    return hasattr(module, "enable_group_offload") and getattr(module, "_supports_group_offloading", False)


def _group_offload_blocks(name: str, module: Any, device: DeviceInfo) -> str:
    """One transformer block on the device at a time; with CUDA streams the next one loads meanwhile."""
    use_stream = device.has_streams
    module.enable_group_offload(
        onload_device=_torch_device(device.torch_device),
        offload_device=_torch_device("cpu"),
        offload_type="block_level",
        num_blocks_per_group=1,
        use_stream=use_stream,
    )
    return f"{name}.enable_group_offload(block_level, num_blocks_per_group=1, use_stream={use_stream})"


def _group_offload_leaves(name: str, module: Any, device: DeviceInfo) -> str:
    """Text encoders (transformers models, no `enable_group_offload`) go layer by layer."""
    from diffusers.hooks import apply_group_offloading

    use_stream = device.has_streams
    apply_group_offloading(
        module,
        onload_device=_torch_device(device.torch_device),
        offload_device=_torch_device("cpu"),
        offload_type="leaf_level",
        use_stream=use_stream,
    )
    return f"apply_group_offloading({name}, leaf_level, use_stream={use_stream})"


def _keep_on_cpu(pipe: Any, name: str) -> list[str]:
    """Leave one encoder on the CPU while the rest of the pipeline runs on the accelerator.

    An accelerate `AlignDevicesHook(execution_device='cpu', io_same_device=True)` moves the encoder's
    inputs to the CPU and its output back to where the inputs came from, so the pipeline's own
    `encode_prompt` works although it sends token ids to the execution device. Listing the encoder in the
    instance's `_exclude_from_cpu_offload` keeps `pipe._execution_device` from reporting the CPU.
    """
    from accelerate.hooks import AlignDevicesHook, add_hook_to_module

    module = getattr(pipe, name)
    module.to("cpu")
    add_hook_to_module(module, AlignDevicesHook(execution_device="cpu", io_same_device=True))
    pipe._exclude_from_cpu_offload = [*pipe._exclude_from_cpu_offload, name]
    return [f"{name} kept on CPU (inputs moved to it, outputs moved back)"]


def _no_t5_note(plan: MemoryPlan) -> list[str]:
    return ["T5 on CPU: this pipeline has no T5 encoder, nothing to keep"] if plan.t5_on_cpu else []


def set_vae_tactics(pipe: Any, *, tiling: bool, slicing: bool) -> list[str]:
    """Switch the VAE's tiling and slicing on or off (diffusers' `enable_*`/`disable_*`); what changed.

    Safe to call before every job: a tactic already as asked is left alone, so nothing is logged twice.
    """
    vae = getattr(pipe, "vae", None)
    if vae is None:
        return ["VAE tiling/slicing skipped: the pipeline has no VAE"] if tiling or slicing else []
    done = []
    for tactic, wanted in (("tiling", tiling), ("slicing", slicing)):
        if bool(getattr(vae, f"use_{tactic}", False)) != wanted:
            call = f"{'enable' if wanted else 'disable'}_{tactic}"
            getattr(vae, call)()
            done.append(f"vae.{call}()")
    return done


def _apply_attention_slicing(pipe: Any, plan: MemoryPlan) -> list[str]:
    if not plan.attention_slicing:
        return []
    if not supports_attention_slicing(pipe):
        return [
            f"attention slicing skipped: {type(pipe).__name__}'s components have no sliced attention "
            "(their SDPA attention is already memory-efficient)"
        ]
    pipe.enable_attention_slicing()
    return ["pipe.enable_attention_slicing()"]


def supports_attention_slicing(pipe: Any) -> bool:
    """Whether `pipe.enable_attention_slicing()` would change anything.

    Every DiffusionPipeline has the method, but it only reaches components that define
    `set_attention_slice` (UNets, ControlNets). FLUX and SD3 transformers in diffusers 0.42 do not, so
    on their pipelines the call is a silent no-op.
    """
    if not callable(getattr(pipe, "enable_attention_slicing", None)):
        return False
    return any(hasattr(module, "set_attention_slice") for _, module in _modules(pipe))


def t5_component_name(pipe: Any) -> str | None:
    """The pipeline attribute holding T5 ('text_encoder_2' in FLUX, 'text_encoder_3' in SD3), if loaded."""
    for name, module in _modules(pipe):
        if name.startswith("text_encoder") and "T5" in type(module).__name__:
            return name
    return None


def _modules(pipe: Any) -> list[tuple[str, Any]]:
    """The pipeline's torch modules by component name, in the pipeline's own order."""
    import torch

    return [(name, c) for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)]


def _torch_device(name: str) -> Any:
    import torch

    return torch.device(name)


def place_addon_module(module: Any, plan: MemoryPlan, device: DeviceInfo) -> str:
    """Place a model an add-on brings (a ControlNet) as the plan places the pipeline's own: on the device,
    streamed by blocks, hooked for sequential offload, or left on the CPU. Under model offload the
    pipeline's `enable_model_cpu_offload` takes it in with the other components."""
    placements = {
        "gpu": lambda: (module.to(device.torch_device), f"to({device.torch_device!r})")[1],
        "model_offload": lambda: "offloaded with the pipeline's components",
        "group_offload": lambda: _group_offload_blocks("controlnet", module, device)
        if _supports_block_offload(module) else _group_offload_leaves("controlnet", module, device),
        "sequential_offload": lambda: _sequential_offload_module(module, device),
        "cpu": lambda: "on the CPU",
    }
    return placements[plan.placement]()


def _sequential_offload_module(module: Any, device: DeviceInfo) -> str:
    from accelerate import cpu_offload

    cpu_offload(module, execution_device=_torch_device(device.torch_device))
    return f"cpu_offload(execution_device={device.torch_device!r})"
