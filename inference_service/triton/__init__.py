"""Serving lipstream's models from NVIDIA Triton: the model repository export (its layout graphs live in runtime)."""
