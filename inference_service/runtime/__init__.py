"""Serving a model: execution providers, the registry, tensor layouts, dynamic batching."""
