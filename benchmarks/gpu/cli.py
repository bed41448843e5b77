"""`lipstream bench gpu` / `python -m benchmarks.gpu`: arguments, the run, the JSON.

The JSON is written here rather than by `benchmarks.e2e.written` (the other benches' writer),
which imports the aiortc viewer: this bench must run where only the inference tier is installed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu import GpuBenchError, batches, report, streams
from benchmarks.gpu.setup import Setup
from inference_service.models import builtin

BUDGET_S = 450.0  # of the 8 minutes a GPU machine is lent for this: the rest is install and start-up


def _counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="default cuda")
    parser.add_argument("--backend", choices=["torch", "onnxruntime"], help="default: torch on cuda, else onnxruntime")
    parser.add_argument(
        "--model", default="synthetic-unet", help=f"a built-in model ({', '.join(builtin.BUILTIN_MODELS)})"
    )
    parser.add_argument("--precisions", default="fp32,fp16", help="comma-separated: fp32, fp16")
    parser.add_argument("--batches", type=_counts, default=[1, 4, 8, 16, 32], help="batch sizes (default 1,4,8,16,32)")
    parser.add_argument(
        "--streams", type=_counts, default=[1, 2, 4, 8, 16, 24, 32, 48, 64], help="stream counts (default 1…64)"
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="per batch size and per stream count (default 4)")
    parser.add_argument("--max-batch", type=int, default=32, help="the server's batching.max_batch (default 32)")
    parser.add_argument("--io-binding", action="store_true", help="runtime.io_binding")
    parser.add_argument("--cuda-graphs", action="store_true", help="runtime.cuda_graphs")
    parser.add_argument(
        "--device-layout", choices=["on", "auto", "off"], default="on", help="runtime.device_layout (default on)"
    )
    parser.add_argument(
        "--budget-s", type=float, default=BUDGET_S, help=f"stop adding points after this (default {BUDGET_S:g})"
    )
    parser.add_argument(
        "--json", type=Path, default=Path("bench-gpu.json"), metavar="OUT", help="default bench-gpu.json"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    deadline = time.monotonic() + args.budget_s
    backend = args.backend or ("torch" if args.device == "cuda" else "onnxruntime")
    setup = Setup(backend, args.device, args.model, args.io_binding, args.cuda_graphs, args.device_layout)
    precisions: dict[str, dict[str, Any]] = {}
    provider = ""
    with tempfile.TemporaryDirectory(prefix="lipstream-bench-gpu-") as temp:
        work = Path(temp)
        for precision in [p for p in args.precisions.split(",") if p]:
            session, provider = batches.open_model(setup, precision, work)
            measured: dict[str, Any] = {"batches": batches.sweep(session, args.batches, args.seconds)}
            del session  # its device memory goes back before the server takes its own
            gc.collect()
            _empty_cuda_cache()
            measured["streams"] = streams.serve_and_measure(
                setup, precision, work, args.streams, args.seconds, args.max_batch, deadline
            )
            measured["sustained_sessions"] = report.sustained_sessions(measured["streams"])
            precisions[precision] = measured
    return {
        "bench": "gpu",
        "model": args.model,
        "device": args.device,
        "backend": backend,
        "provider": provider,
        "measured_on_gpu": args.device == "cuda",
        "settings": {
            "io_binding": args.io_binding,
            "cuda_graphs": args.cuda_graphs,
            "max_batch": args.max_batch,
            "device_layout": args.device_layout,
            "seconds": args.seconds,
        },
        "machine": report.machine(load_before),
        "precisions": precisions,
        "fp16_vs_fp32": report.compare(precisions),
    }


def _empty_cuda_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def handler(args: argparse.Namespace) -> int:
    unknown = [p for p in args.precisions.split(",") if p and p not in ("fp32", "fp16")]
    if unknown or args.model not in builtin.BUILTIN_MODELS:
        print(f"unknown precision(s) {unknown} or model {args.model!r}", file=sys.stderr)
        return 2
    try:
        result = run(args)
    except GpuBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("\n".join(report.lines(result)))
    print(f"written: {args.json}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gpu", help="synthetic-unet on one device: batches, paced streams, fp32 vs fp16")
    add_arguments(parser)
    parser.set_defaults(handler=handler)


def main(argv: list[str] | None = None) -> int:
    import logging

    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return handler(parser.parse_args(argv))
