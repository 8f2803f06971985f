"""Weight deltas of the low-rank add-on kinds: LoRA, LyCORIS LoHa and LoKr, and full differences.

Every adapter holds one module's tensors as the file stores them and gives its delta in float32
for all output rows or for a chosen subset (`rows`: indices into the adapter's output rows). A
fused module in the file (FLUX's qkv, SD3's qkv) is one adapter; each diffusers module it covers
takes its own rows. Row subsets are taken before the product where the maths allows it, so a
slice of a fused q/k/v never builds the whole fused matrix.

Scales, as the trainers define them (`alpha` is the file's ".alpha" scalar):
- LoRA: up @ down * alpha / rank, rank = down's rows; no alpha: scale 1 (alpha = rank).
- LoHa: (w1_a @ w1_b) * (w2_a @ w2_b) * alpha / rank, rank = w1_b's rows; Tucker cores (t1, t2)
  are folded in as LyCORIS does; no alpha: scale 1.
- LoKr: kron(w1, w2) * alpha / rank, where w1 or w2 may be given as a low-rank pair (a @ b) and
  rank is that pair's inner size; when neither is a pair, or alpha is absent, the scale is 1
  (LyCORIS and ComfyUI read it the same way).
- Full: a stored difference ("diff", "diff_b") is added as it is.
The delta of a bias is a vector (PEFT's lora_B.bias times the LoRA scale, or diff_b).

Convolution-shaped tensors (kernel dims after the first two) are flattened to matrices and the
delta is reshaped to the target's shape by the caller.
"""

from __future__ import annotations

from functools import partial

import torch

Rows = torch.Tensor | None


def _take(t: torch.Tensor, rows: Rows) -> torch.Tensor:
    return t if rows is None else t.index_select(0, rows.to(t.device))


def _f32(t: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    return t.to(device=device, dtype=torch.float32)


def _alpha_scale(alpha: float | None, rank: int | None) -> float:
    if alpha is None or not rank:
        return 1.0
    return float(alpha) / rank


def _tucker(core: torch.Tensor, b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """LyCORIS' Tucker rebuild: core (r, r, k, k), b (r, in), a (r, out) -> (out, in, k, k)."""
    return torch.einsum("i j k l, j r, i p -> p r k l", core, b, a)


class LowRank:
    """Plain LoRA: up (out, rank[, 1, 1]) @ down (rank, in[, k, k]) * alpha / rank."""

    kind = "lora"

    def __init__(self, down: torch.Tensor, up: torch.Tensor, alpha: float | None = None):
        if down.shape[0] != up.shape[1]:
            raise ValueError(f"lora_down has rank {down.shape[0]} but lora_up has rank {up.shape[1]}")
        self.down, self.up = down, up
        self.rank = down.shape[0]
        self.scale = _alpha_scale(alpha, self.rank)
        self.out_rows = up.shape[0]
        self.in_size = down[0].numel()

    def delta(self, rows: Rows = None, device=None) -> torch.Tensor:
        up = _f32(_take(self.up, rows), device).flatten(1)
        down = _f32(self.down, device).flatten(1)
        return (up @ down).mul_(self.scale)


class Hadamard:
    """LyCORIS LoHa: (w1_a @ w1_b) * (w2_a @ w2_b) * alpha / rank, optional Tucker cores."""

    kind = "loha"

    def __init__(self, w1_a, w1_b, w2_a, w2_b, alpha: float | None = None, t1=None, t2=None):
        if (t1 is None) != (t2 is None):
            raise ValueError("a LoHa module needs both Tucker cores (hada_t1 and hada_t2) or neither")
        self.w1_a, self.w1_b, self.w2_a, self.w2_b, self.t1, self.t2 = w1_a, w1_b, w2_a, w2_b, t1, t2
        self.rank = w1_b.shape[0]
        self.scale = _alpha_scale(alpha, self.rank)
        if t1 is None:
            self.out_rows, self.in_size = w1_a.shape[0], w1_b[0].numel()
        else:  # Tucker: w1_a is (rank, out), the kernel is in the core
            self.out_rows, self.in_size = w1_a.shape[1], w1_b.shape[1] * t1[0, 0].numel()

    def delta(self, rows: Rows = None, device=None) -> torch.Tensor:
        f = partial(_f32, device=device)
        if self.t1 is None:
            one = _take(f(self.w1_a), rows).flatten(1) @ f(self.w1_b).flatten(1)
            two = _take(f(self.w2_a), rows).flatten(1) @ f(self.w2_b).flatten(1)
        else:
            one = _take(_tucker(f(self.t1), f(self.w1_b), f(self.w1_a)), rows).flatten(1)
            two = _take(_tucker(f(self.t2), f(self.w2_b), f(self.w2_a)), rows).flatten(1)
        return (one * two).mul_(self.scale)


class Kronecker:
    """LyCORIS LoKr: kron(w1, w2) * scale; w1 = w1_a @ w1_b and w2 = w2_a @ w2_b when so stored."""

    kind = "lokr"

    def __init__(self, w1=None, w2=None, *, w1_a=None, w1_b=None, w2_a=None, w2_b=None, t2=None,
                 alpha: float | None = None):
        if w1 is None and (w1_a is None or w1_b is None):
            raise ValueError("a LoKr module needs lokr_w1 or both lokr_w1_a and lokr_w1_b")
        if w2 is None and (w2_a is None or w2_b is None):
            raise ValueError("a LoKr module needs lokr_w2 or both lokr_w2_a and lokr_w2_b")
        self.w1, self.w2, self.w1_a, self.w1_b, self.w2_a, self.w2_b, self.t2 = w1, w2, w1_a, w1_b, w2_a, w2_b, t2
        rank = None
        if w1 is None:
            rank = w1_b.shape[0]
        if w2 is None:
            rank = w2_b.shape[0]
        self.rank = rank
        self.scale = _alpha_scale(alpha, rank)
        w1_shape = tuple(w1.shape) if w1 is not None else (w1_a.shape[0], w1_b.shape[1])
        if w2 is not None:
            w2_rows, w2_in = w2.shape[0], w2[0].numel()
        elif t2 is not None:
            w2_rows, w2_in = w2_a.shape[1], w2_b.shape[1] * t2[0, 0].numel()
        else:
            w2_rows, w2_in = w2_a.shape[0], w2_b[0].numel()
        self.out_rows = w1_shape[0] * w2_rows
        self.in_size = w1_shape[1] * w2_in

    def _factors(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        f = partial(_f32, device=device)
        w1 = f(self.w1) if self.w1 is not None else f(self.w1_a) @ f(self.w1_b)
        if self.w2 is not None:
            w2 = f(self.w2)
        elif self.t2 is not None:
            w2 = _tucker(f(self.t2), f(self.w2_b), f(self.w2_a))
        else:
            w2 = f(self.w2_a) @ f(self.w2_b).flatten(1)
            if self.w2_b.dim() > 2:
                w2 = w2.reshape(w2.shape[0], *self.w2_b.shape[1:])
        while w1.dim() < w2.dim():
            w1 = w1.unsqueeze(-1)
        return w1, w2

    def delta(self, rows: Rows = None, device=None) -> torch.Tensor:
        w1, w2 = self._factors(device)
        full = torch.kron(w1, w2).flatten(1)
        return _take(full, rows).mul_(self.scale)


class Full:
    """A stored difference (LyCORIS "diff" / "diff_b", a bias of PEFT's lora_B), added as it is."""

    kind = "full"

    def __init__(self, diff: torch.Tensor, scale: float = 1.0):
        self.diff = diff
        self.scale = scale
        self.out_rows = diff.shape[0]
        self.in_size = diff[0].numel() if diff.dim() > 1 else None

    def delta(self, rows: Rows = None, device=None) -> torch.Tensor:
        d = _f32(_take(self.diff, rows), device)
        return (d.flatten(1) if d.dim() > 1 else d).mul(self.scale)


Adapter = LowRank | Hadamard | Kronecker | Full


def patch_delta(adapter: Adapter, shape: torch.Size | tuple[int, ...], strength: float, dtype: torch.dtype,
                device=None, rows: Rows = None, columns: int | None = None) -> torch.Tensor:
    """The delta to add to a parameter of `shape`: float32 maths, returned in `dtype` on `device`.

    `rows` picks the adapter's output rows that belong to this parameter; `columns` < the weight's
    input size places a delta that covers only the leading inputs (XLabs' single-block LoRAs),
    the rest of the delta being zero.
    """
    d = adapter.delta(rows, device).mul_(float(strength))
    if columns is not None and len(shape) > 1 and columns < shape[1]:
        padded = torch.zeros((d.shape[0], shape[1]), dtype=d.dtype, device=d.device)
        padded[:, :columns] = d
        d = padded
    if d.numel() != torch.Size(shape).numel():
        raise ValueError(f"a delta of {tuple(d.shape)} cannot be added to a weight of {tuple(shape)}")
    return d.reshape(shape).to(dtype)


class IncompleteAdapter(ValueError):
    """A module's tensors lack one that its kind needs (a lora_down without its lora_up...)."""


_ROLE_NAMES = {"down": "lora_down / lora_A", "up": "lora_up / lora_B"}


def _need(roles, *names: str) -> list[torch.Tensor]:
    missing = [n for n in names if n not in roles]
    if missing:
        raise IncompleteAdapter("incomplete: no " + ", ".join(_ROLE_NAMES.get(n, n) for n in missing) + " tensor")
    return [roles[n] for n in names]


def _loha(roles, alpha):
    return Hadamard(*_need(roles, "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"), alpha,
                    roles.get("hada_t1"), roles.get("hada_t2"))


def _lokr(roles, alpha):
    for factor in ("w1", "w2"):
        if f"lokr_{factor}" not in roles:
            _need(roles, f"lokr_{factor}_a", f"lokr_{factor}_b")
    return Kronecker(roles.get("lokr_w1"), roles.get("lokr_w2"), w1_a=roles.get("lokr_w1_a"),
                     w1_b=roles.get("lokr_w1_b"), w2_a=roles.get("lokr_w2_a"), w2_b=roles.get("lokr_w2_b"),
                     t2=roles.get("lokr_t2"), alpha=alpha)


def _lora(roles, alpha):
    return LowRank(*_need(roles, "down", "up"), alpha)


def _diff(roles, alpha):
    return Full(roles["diff"])


# The role that marks each kind -> its builder; the first kind present wins.
_BUILDERS = (
    (("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"), _loha),
    (("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b"), _lokr),
    (("down", "up"), _lora),
    (("diff",), _diff),
)
WEIGHT_ROLES = frozenset(r for markers, _ in _BUILDERS for r in markers) | {"hada_t1", "hada_t2", "lokr_t2"}


def build_adapter(roles: dict[str, torch.Tensor], alpha: float | None) -> Adapter | None:
    """The adapter of one module's tensors (by role), None when it has no weight tensors.

    Raises IncompleteAdapter naming the missing tensor, ValueError for inconsistent shapes.
    """
    for markers, build in _BUILDERS:
        if any(m in roles for m in markers):
            return build(roles, alpha)
    return None


def bias_adapter(roles: dict[str, torch.Tensor], weight: Adapter | None) -> Full | None:
    """The bias delta: PEFT's lora_B.bias (times the LoRA's scale) or LyCORIS' diff_b."""
    if "up_bias" in roles:
        return Full(roles["up_bias"], getattr(weight, "scale", 1.0))
    if "diff_b" in roles:
        return Full(roles["diff_b"])
    return None
