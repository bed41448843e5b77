"""Serving lipstream's models from NVIDIA Triton: the model repository export and its layout graphs."""
