"""The code's shape: the import contracts in pyproject.toml hold, and modules stay small."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lipstream", "protos", "inference_service", "media_server", "signaling", "benchmarks")
GENERATED = ROOT / "protos" / "lipsync"
MAX_MODULE_LINES = 400


def test_import_contracts_hold() -> None:
    """Layers (signaling over media over the inference client over protos), no cycles, lean serving path.

    In a process of its own: import-linter reconfigures logging, which would silence this one's loggers.
    """
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]
    result = subprocess.run([*command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_outside_generated_code_is_long() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if GENERATED not in path.parents and (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


@pytest.mark.parametrize(
    ("command", "serving_modules", "never_loaded"),
    [
        (
            "edge",
            ["signaling.app", "media_server.edge"],
            ["skimage", "tqdm", "media_server.avatars.prepare", "media_server.avatars.bundled", "benchmarks"],
        ),
        ("inference", ["inference_service.serving.server"], ["media_server", "signaling", "aiortc", "benchmarks"]),
    ],
)
def test_a_server_process_loads_only_what_it_serves(
    command: str, serving_modules: list[str], never_loaded: list[str]
) -> None:
    """What the import contracts say of modules, in a real process: the CLI loads one command's package."""
    script = (
        "import sys\n"
        "from lipstream.cli import build_parser\n"
        f"build_parser({command!r})\n"
        + "".join(f"import {module}\n" for module in serving_modules)
        + f"print([m for m in {never_loaded!r} if any(n == m or n.startswith(m + '.') for n in sys.modules)])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"`lipstream {command}` loads {result.stdout.strip()}"
