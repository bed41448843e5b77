"""The gRPC face of the inference tier: lipsync.v1, health, reflection, metrics."""
