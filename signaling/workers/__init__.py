"""Every core of a machine: N edge worker processes behind one public port.

An edge process is one event loop, and in practice one core. `lipstream edge --workers N` runs
N workers (`worker`), each a whole edge with its own loop, aiortc peers and UDP sockets, behind
a front process (`front`) that owns the public port and forwards HTTP and WebSocket requests to
them over private unix sockets (`proxy`). Media never passes through the front: a worker's SDP
answer carries its own ICE candidates, so a viewer's UDP goes straight to it.

Which worker owns a session is written in the session's id (`routing`): a worker prefixes the ids
it creates with its index. Any request under `sessions/{id}` (control, speech, the live WebSocket,
WHEP's DELETE and PATCH, and any per-session route added later) goes to that worker without a
lookup, so the front keeps no table that could disagree with the workers, and a restarted worker,
which has the same index and none of the old sessions, answers 404 for them by itself. A table
would need every session's end reported before a request could be routed; the id needs nothing.

The front still counts sessions, to keep `max_sessions` one limit for the machine and to send a
new session to the least-loaded worker: each worker reports its sessions on a pipe whenever they
change (`status`), and the front adds the creations it has forwarded and not yet seen reported.
It supervises the workers (`pool`): one that dies is restarted with backoff, its sessions are gone
(their viewers' connections fail, the API answers 404) and nobody else notices. `/health` and
`/metrics` cover every worker (`aggregate`): totals and one entry, or a `worker` label, each.
SIGTERM drains: the front refuses new sessions (503, Retry-After), the workers let theirs run for
up to `sessions.drain_timeout_s` and exit, and the front exits 0 after them.
"""
