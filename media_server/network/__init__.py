"""What a viewer's link allows a session: the bitrate and frame rate of its video, and when it sends keyframes."""
