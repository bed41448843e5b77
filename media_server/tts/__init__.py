"""Text to speech: engines (espeak-ng, OpenAI-compatible servers, piper) that stream PCM into a live utterance."""
