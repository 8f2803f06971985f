"""Style picker on txt2img and img2img: the styles of every preset (and of extensions' presets), applied
to the prompt boxes so that the user sees, and can edit, the final prompt before generating."""

import pluggy

hookimpl = pluggy.HookimplMarker("easel")
TABS = ("txt2img", "img2img")


def apply_style(styles, name: str, prompt: str, negative_prompt: str) -> tuple[str, str]:
    """The prompts with style `name` applied; unchanged for an unknown name."""
    style = next((s for s in styles if s.name == name), None)
    return style.apply(prompt, negative_prompt) if style else (prompt, negative_prompt)


@hookimpl
def register_ui_sections(tab, register):
    if tab.name not in TABS or "prompt" not in tab.components:
        return

    def build():
        import gradio as gr

        styles = tab.easel.styles()
        prompt, negative = tab.components["prompt"], tab.components["negative_prompt"]
        with gr.Row():
            picked = gr.Dropdown([s.name for s in styles], label="Style", scale=3)
            apply = gr.Button("Apply to prompt", scale=1)
        apply.click(lambda n, p, q: apply_style(styles, n, p, q), inputs=[picked, prompt, negative],
                    outputs=[prompt, negative], api_visibility="private")

    register("Styles", build)
