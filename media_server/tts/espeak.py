"""espeak-ng, the embedded engine: a Debian package, offline, a voice for every language it knows.

Voices are espeak-ng's languages (`en-us`), optionally with one of its variants (`en-us+f3`, a
female voice). The program writes WAV to stdout clause by clause, which is streamed as it comes.
"""

from __future__ import annotations

import asyncio
import shutil

from media_server.config import EspeakConfig
from media_server.tts.engine import Synthesis, TtsFailed, TtsRequestError, Voice
from media_server.tts.process import output, spawn
from media_server.tts.wav import read_wav_format

LIST_TIMEOUT_S = 10.0


class EspeakEngine:
    name = "espeak-ng"

    def __init__(self, config: EspeakConfig) -> None:
        self._config = config
        self._program = shutil.which(config.program)
        self._voices: list[Voice] | None = None
        self._variants: set[str] = set()
        self._listing = asyncio.Lock()

    def unavailable(self) -> str | None:
        if self._program is None:
            return f"espeak-ng is not installed ('{self._config.program}' not found): apt-get install espeak-ng"
        return None

    def default_voice(self) -> str:
        return self._config.voice

    async def voices(self) -> list[Voice]:
        async with self._listing:
            if self._voices is None:
                self._voices = [_voice(line) for line in (await self._list("--voices"))[1:] if len(line.split()) >= 5]
                self._variants = {line.split()[4].split("/")[-1] for line in (await self._list("--voices=variant"))[1:]}
        return self._voices

    async def variants(self) -> list[str]:
        await self.voices()
        return sorted(self._variants, key=str.lower)

    async def check_voice(self, voice: str) -> None:
        language, _, variant = voice.partition("+")
        if language not in {v.id for v in await self.voices()}:
            raise TtsRequestError(f"espeak-ng has no voice '{language}' (GET /voices lists them)")
        if variant and variant not in self._variants:
            raise TtsRequestError(f"espeak-ng has no variant '{variant}' (GET /voices lists them)")

    async def start(self, text: str, voice: str) -> Synthesis:
        assert self._program is not None
        argv = [self._program, "--stdout", "-v", voice, "-s", str(self._config.words_per_minute)]
        process = await spawn(argv, text)
        assert process.stdout is not None
        stdout = process.stdout
        return await output(process, self.name, lambda: read_wav_format(stdout))

    async def _list(self, option: str) -> list[str]:
        assert self._program is not None
        process = await asyncio.create_subprocess_exec(
            self._program, option, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            listing, _ = await asyncio.wait_for(process.communicate(), LIST_TIMEOUT_S)
        except TimeoutError as exc:
            process.kill()
            await process.wait()
            raise TtsFailed(f"espeak-ng {option} did not answer within {LIST_TIMEOUT_S:g} s") from exc
        return listing.decode("utf-8", "replace").splitlines()

    async def close(self) -> None:
        return None


def _voice(line: str) -> Voice:
    """One line of `espeak-ng --voices`: priority, language, age/gender, name, file, other languages."""
    _, language, age_gender, name, *_ = line.split()
    gender = {"M": "male", "F": "female"}.get(age_gender.rpartition("/")[2])
    return Voice(language, name.replace("_", " "), language, gender)
