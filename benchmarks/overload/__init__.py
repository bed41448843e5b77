"""`lipstream bench overload`: more viewers than the edge carries, all speaking.

What a user relies on under overload: the sessions the edge admitted keep their frame rate,
the others are refused (503 with Retry-After) instead of dragging everyone down, and new
sessions are admitted again once the load is gone. `run` drives the viewers, `report`
writes the JSON and the plot, `cli` is the command.
"""
