"""lipstream in voice-agent frameworks (each an optional extra: `pip install lipstream[pipecat]`)."""
