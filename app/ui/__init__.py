"""The Gradio web UI: Forge-style tabs over the engine. Built by `build_ui(context)`."""
