"""Video out of the edge: mouth regions composited into I420 frames, and live H.264 encoding."""
