"""Avatars: the on-disk format, the shared frame store, name lookup, and offline preparation.

Serving uses `format`, `geometry`, `i420`, `store` and `catalogue`; `prepare` and `bundled`
(face detection, scikit-image) run offline or once at start-up, never on a session's path.
"""
