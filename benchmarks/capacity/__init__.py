"""`lipstream bench edge-capacity`: what a session costs the edge, idle and speaking, in CPU and memory.

The inference service and the edge run as child processes (`benchmarks.e2e.services`), the edge
with `--workers N`; real aiortc viewers in the bench process receive and decode every session. The
CPU of the whole edge process tree (a front and its workers, or the one edge process) is summed
over three phases of equal length: no session, S idle sessions, the same S sessions all speaking.
A session's cost is its phase's CPU less the empty edge's, divided by S, as a share of one core;
inference runs in its own process and is not counted. Memory is RSS and PSS of every edge process
(PSS splits shared pages, such as the mapped avatar frames, between the processes that map them).
`run` steps through the phases, `meter` reads the process tree, `report` and `plot` write the
results and `cli` is the command.
"""
