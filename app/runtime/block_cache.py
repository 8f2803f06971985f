"""First Block Cache (ParaAttention's, in diffusers): a step whose first transformer block changes its
output by less than `threshold` (relative mean) since the last full step reuses that step's residual
for the other blocks, so it costs about one block instead of all of them.

It pays off on many-step jobs (FLUX.1 dev's 28-50, SD3.5's 28-40); a job of fewer than MIN_STEPS steps
(FLUX.1 schnell's 4) runs without it, as there is little to reuse and every step matters. The threshold
is Easel's `first_block_cache` setting or the request's; ParaAttention suggests 0.08-0.12 for FLUX.1 dev.
"""

from __future__ import annotations

MIN_STEPS = 10


def set_block_cache(transformer, threshold: float, steps: int) -> float:
    """Turn the cache on at `threshold` for a job of `steps` steps, or off; returns the threshold in use
    (0 when off). Its state starts afresh for every job."""
    wanted = threshold if threshold > 0 and steps >= MIN_STEPS else 0.0
    if not hasattr(transformer, "enable_cache"):  # not a diffusers CacheMixin model
        return 0.0
    current = getattr(transformer, "_easel_block_cache", 0.0)
    if current and current != wanted:
        transformer.disable_cache()
        current = 0.0
    if wanted and not current:
        from diffusers.hooks import FirstBlockCacheConfig

        transformer.enable_cache(FirstBlockCacheConfig(threshold=wanted))
    transformer._easel_block_cache = wanted
    if wanted:
        transformer._reset_stateful_cache()
    return wanted
