"""`lipstream bench soak`: does the edge give back what a thousand sessions took?

The inference service and the edge run as child processes (`benchmarks.e2e.services`), and a
few workers open and end sessions on the edge in rotation, with every way a session can end
(`cycles`): DELETE /sessions, DELETE on the WHEP resource, a peer that just hangs up, an
answer never applied (the edge's connect timeout ends it). `probe` samples the edge's memory,
threads, descriptors and sockets after a warm-up, during the run and once every session is
gone; `run` drives it, `report` compares the end with the start, `plot` draws it, `cli` is
the command.
"""
