"""A Pipecat frame processor that gives a voice agent a face: its TTS audio is spoken by a lipstream avatar.

Put it after the TTS service (`pip install lipstream[pipecat]`; it talks to the edge over HTTP and
WebSocket with `lipstream.client`)::

    avatar = LipstreamAvatar(api.attach(session_id, token))
    pipeline = Pipeline([transport.input(), stt, llm, tts, avatar, transport.output()])

Every `TTSAudioRawFrame` is streamed into the session's live PCM feed (the lips move with the first
audio), `TTSStoppedFrame` ends the utterance, and an interruption (the user barging in) interrupts
the avatar at once. Every frame is passed on unchanged; lipstream's failures become non-fatal
error frames, so the agent goes on talking even when its face cannot.
"""

from __future__ import annotations

from pipecat.frames import frames as pipecat_frames
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from lipstream.client import LipstreamError, LiveStream, Session

# The frame that announces a barge-in: InterruptionFrame now, StartInterruptionFrame in older Pipecat.
INTERRUPTIONS: tuple[type[Frame], ...] = tuple(
    getattr(pipecat_frames, name)
    for name in ("InterruptionFrame", "StartInterruptionFrame")
    if hasattr(pipecat_frames, name)
)


class LipstreamAvatar(FrameProcessor):
    """Forwards TTS audio to a lipstream session, ends its utterances, interrupts it; passes every frame on."""

    def __init__(self, session: Session, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._session = session
        self._stream: LiveStream | None = None
        self._format: tuple[int, int] | None = None  # sample rate and channels of the open stream
        self._failed = False  # this response's audio could not be sent: skip the rest (one error, not one a frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        try:
            if isinstance(frame, TTSStartedFrame):
                self._failed = False
            elif isinstance(frame, TTSAudioRawFrame) and not self._failed:
                await self._speak(frame)
            elif isinstance(frame, TTSStoppedFrame):
                await self._end_utterance()
            elif isinstance(frame, INTERRUPTIONS):
                await self._interrupt()
            elif isinstance(frame, EndFrame | CancelFrame):
                await self._close_stream()
        except LipstreamError as exc:
            self._failed = isinstance(frame, TTSAudioRawFrame)
            await self.push_error(f"lipstream: {exc}", exception=exc)
            await self._close_stream()
        await self.push_frame(frame, direction)

    async def _speak(self, frame: TTSAudioRawFrame) -> None:
        wanted = (frame.sample_rate, frame.num_channels)
        if self._stream is not None and self._format != wanted:
            await self._close_stream()
        if self._stream is None:
            self._stream = await self._session.stream(frame.sample_rate, "s16le", frame.num_channels).open()
            self._format = wanted
        await self._stream.write(frame.audio)

    async def _end_utterance(self) -> None:
        if self._stream is not None:
            await self._stream.end()

    async def _interrupt(self) -> None:
        """Silence the avatar first, then drop the half-sent utterance with its stream."""
        await self._session.interrupt()
        await self._close_stream()

    async def _close_stream(self) -> None:
        stream, self._stream, self._format = self._stream, None, None
        if stream is not None:
            try:
                await stream.close()
            except LipstreamError:  # the stream is gone either way
                pass
