"""The test utterance every client speaks: irregular syllables, then a vowel held long enough to be interrupted."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.kit.speech import Span, buzzy_voice, encode, random_syllables
from lipstream.timebase import VIDEO_FPS

SUSTAIN_S = 2.0  # the utterance ends on a sustained vowel, which the interrupt cuts
INTERRUPT_INTO_SUSTAIN_FRAMES = 10


@dataclass(frozen=True)
class SpeechScript:
    """What every client says: `burst_frames` of syllables, then a sustained vowel the interrupt cuts."""

    audio: bytes  # a WAV upload
    burst_frames: int
    interrupt_index: int  # utterance frame at whose arrival the client interrupts

    @classmethod
    def build(cls, seconds: float, seed: int = 0) -> SpeechScript:
        spans = [*random_syllables(seconds, seed), Span(seconds, seconds + SUSTAIN_S)]
        samples = buzzy_voice(spans, seconds + SUSTAIN_S, seed=seed)
        bursts = int(round(seconds * VIDEO_FPS))
        return cls(encode(samples), bursts, bursts + INTERRUPT_INTO_SUSTAIN_FRAMES)
