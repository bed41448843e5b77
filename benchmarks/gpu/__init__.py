"""`lipstream bench gpu` (or `python -m benchmarks.gpu`, no edge dependencies): synthetic-unet on one device.

`batches` times the model alone at each batch size, `streams` runs paced 25 fps streams
through a real `lipstream inference` process at each stream count, both in fp32 and fp16;
`report` finds how many 25 fps sessions the device sustains with p99 under 40 ms. Made for a
GPU machine with a CUDA PyTorch and no package registry (`benchmarks/gpu.sh`: the torch backend,
lipstream's other dependencies installed from a wheelhouse); `--device cpu` runs it here.
"""


class GpuBenchError(RuntimeError):
    """The bench cannot measure what it was asked for (the device is not there, the server did not start)."""
