"""`lipstream bench e2e`: capacity, latency and A/V sync measured at real WebRTC clients."""
