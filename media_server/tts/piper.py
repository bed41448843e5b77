"""piper, when its program and a voice model are configured: raw 16-bit PCM at the model's rate on stdout.

Each voice is a model file (`name: /path/voice.onnx`); its sample rate is read from the
`voice.onnx.json` piper keeps next to it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from media_server.config import PiperConfig
from media_server.speech.audio import PcmFormat
from media_server.tts.engine import Synthesis, TtsFailed, TtsRequestError, Voice
from media_server.tts.process import output, spawn


class PiperEngine:
    name = "piper"

    def __init__(self, config: PiperConfig) -> None:
        self._config = config
        self._program = shutil.which(config.program)
        self._rates: dict[str, int] = {}

    def unavailable(self) -> str | None:
        if not self._config.voices:
            return "no piper voice is configured: set tts.piper.voices (name: /path/to/voice.onnx)"
        if self._program is None:
            return f"piper is not installed ('{self._config.program}' not found): pip install piper-tts"
        return None

    def default_voice(self) -> str:
        return self._config.voice or next(iter(self._config.voices), "")

    async def voices(self) -> list[Voice]:
        return [Voice(name, name) for name in self._config.voices]

    async def check_voice(self, voice: str) -> None:
        if voice not in self._config.voices:
            raise TtsRequestError(f"piper has no voice '{voice}' (configured: {sorted(self._config.voices)})")

    async def _rate(self, voice: str) -> int:
        if voice not in self._rates:
            model = self._config.voices[voice]
            self._rates[voice] = await asyncio.get_running_loop().run_in_executor(None, _model_rate, model)
        return self._rates[voice]

    async def start(self, text: str, voice: str) -> Synthesis:
        assert self._program is not None
        rate = await self._rate(voice)
        process = await spawn([self._program, "--model", str(self._config.voices[voice]), "--output-raw"], text)

        async def raw_format() -> PcmFormat:
            return PcmFormat(rate, "s16le", 1)

        return await output(process, self.name, raw_format)

    async def close(self) -> None:
        return None


def _model_rate(model: Path) -> int:
    config = Path(f"{model}.json")
    try:
        rate = json.loads(config.read_text(encoding="utf-8"))["audio"]["sample_rate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TtsFailed(f"cannot read the piper voice's sample rate from {config}: {exc}") from exc
    if not isinstance(rate, int):
        raise TtsFailed(f"{config} gives no whole sample rate")
    return rate
