"""Add-ons applied to a loaded model for one job: LoRA file formats, their maths and matching."""
