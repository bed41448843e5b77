"""WebRTC for a session: SDP negotiation with H.264 forced, the tracks, the microphone, the stats channel."""
