"""Instruments the benchmarks and the tests share: test speech, a WebRTC viewer, a mouth-motion meter."""
