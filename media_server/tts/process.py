"""An engine that is a program: text on its stdin, audio streamed from its stdout, never on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from media_server.speech.audio import PcmFormat
from media_server.tts.engine import Synthesis, TtsFailed

STDERR_KEPT = 2000  # bytes of the program's complaint quoted in the error


async def spawn(argv: Sequence[str], text: str) -> asyncio.subprocess.Process:
    """Start the program with `text` on its stdin (then closed); TtsFailed if it cannot be started."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise TtsFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    assert process.stdin is not None
    process.stdin.write(text.encode("utf-8"))
    with contextlib.suppress(ConnectionError):  # it may have exited already: its status says why
        await process.stdin.drain()
    process.stdin.close()
    return process


async def output(
    process: asyncio.subprocess.Process, name: str, read_format: Callable[[], Awaitable[PcmFormat]]
) -> Synthesis:
    """The program's stdout as a synthesis; its exit status is checked at the end of the audio."""
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = process.stdout, process.stderr

    async def finished() -> None:
        complaint = (await stderr.read(STDERR_KEPT)).decode("utf-8", "replace").strip()
        status = await process.wait()
        if status != 0:
            raise TtsFailed(f"{name} exited with status {status}" + (f": {complaint}" if complaint else ""))

    async def close() -> None:
        if process.returncode is None:
            process.kill()
        # Until its pipes are read to the end, asyncio does not report the exit (wait() would hang);
        # what is left is bounded, the program being dead.
        await asyncio.gather(stdout.read(), stderr.read())
        await process.wait()

    try:
        pcm = await read_format()
    except TtsFailed:
        try:
            await finished()  # a program that failed says why
        finally:
            await close()
        raise
    except BaseException:
        await close()
        raise
    return Synthesis(pcm, stdout, finished, close)
