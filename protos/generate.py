"""Regenerate the committed Python code from the .proto files.

Run as `python -m protos.generate` from the repository root; a test checks that
the committed files are what this produces.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

# Protos are compiled relative to the repository root so the generated imports
# read `from protos.lipsync.v1 import ...` and resolve inside this package.
REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_FILES = ["protos/lipsync/v1/lipsync.proto"]


def generate(out_dir: Path = REPO_ROOT) -> None:
    include = Path(protoc.__file__).resolve().parent / "_proto"
    for proto in PROTO_FILES:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{REPO_ROOT}",
                f"-I{include}",
                f"--python_out={out_dir}",
                f"--pyi_out={out_dir}",
                f"--grpc_python_out={out_dir}",
                str(REPO_ROOT / proto),
            ]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed on {proto} (exit {status})")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT)
