"""`python -m benchmarks.gpu`: the GPU bench without the `lipstream` command's other benches (and their imports)."""

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `lipstream` sets it

from benchmarks.gpu.cli import main  # noqa: E402 - after the environment it reads

sys.exit(main())
