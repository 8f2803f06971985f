"""Regional compilation: torch.compile of the transformer's repeated block (diffusers'
`compile_repeated_blocks`), as diffusers and ComfyUI recommend for FLUX.1 and SD3.5.

One block class is compiled once and reused for all its instances, so the compile takes seconds, not
the minutes a whole-model compile does; weights stay parameters (a LoRA fused in place needs no
recompile), and a new prompt or seed reuses the compiled code. A new image size compiles again. The
first image after loading pays the compile time, which the job reports once.
"""

from __future__ import annotations


BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks")


def compile_repeated_blocks(transformer) -> str:
    """Compile the transformer's repeated blocks in place; the log line saying so. A model class that
    names no repeated block (diffusers' SD3Transformer2DModel) has each block of its block lists
    compiled the same way."""
    blocks = tuple(getattr(transformer, "_repeated_blocks", ()) or ())
    if blocks:
        transformer.compile_repeated_blocks(fullgraph=True)
    else:
        lists = [getattr(transformer, name) for name in BLOCK_LISTS if hasattr(transformer, name)]
        for block in (b for blocks_ in lists for b in blocks_):
            block.compile(fullgraph=True)
        blocks = tuple(sorted({type(b).__name__ for blocks_ in lists for b in blocks_}))
    return f"compiling {', '.join(blocks) or 'the repeated blocks'} (torch.compile) on the first image"


def compile_note(seconds: float) -> str:
    return (f"the first image compiled the transformer's blocks (torch.compile): it took {seconds:.1f} s; "
            "later images at this size reuse the compiled code")
