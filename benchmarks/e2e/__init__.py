"""`lipstream bench e2e`: capacity, latency and A/V sync measured where a user sees them, at real clients.

The inference service and the edge run as child processes (`services`), as `lipstream serve`
runs them, so the clients here share neither the edge's event loop nor its GIL (they do share
the machine's cores: their CPU is reported apart). Each client is a real aiortc peer
(`benchmarks.kit.viewer`) that receives and decodes the H.264 and Opus tracks; at each level
of sessions all of them speak the test utterance (`script`) and interrupt it (`clients`).
`analysis` turns what a client received into latencies and A/V offsets, `run` steps through
the levels, `report` writes the JSON summary and `cli` is the command.
"""


class BenchError(RuntimeError):
    """The bench could not run (a service did not start, a client got no video); the message says which."""
