"""A viewer's session: the A/V clock, speech input, the look-ahead mouth pipeline, rendering."""
