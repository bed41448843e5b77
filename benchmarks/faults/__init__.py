"""`lipstream bench faults`: what viewers see while the inference tier dies or hangs, and how soon lips move again.

The inference service and the edge run as child processes (`benchmarks.e2e.services`); two
viewers (`benchmarks.kit.viewer`) speak long speech while `injector` SIGKILLs the inference
child (and restarts it itself, as `lipstream serve`'s supervision would) and later SIGSTOPs it
for a while. `health` polls the edge's /health meanwhile, `run` drives the sequence,
`analysis` turns the viewers' frames into gaps, losses and the lips' return, `report` writes
the JSON, `plot` the PNG and `cli` is the command.
"""
