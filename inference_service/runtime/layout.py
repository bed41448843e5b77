"""The compact exchange <-> a model's own float32 tensor layout.

Edges send 8-bit crops (I420 or BGR) and float16 audio windows; this module
builds the model input (reference + masked copy, channel order, /255) for a
whole batch at once and turns the model output back into 8-bit crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inference_service.config import ModelSpec
from protos.lipsync.v1 import lipsync_pb2 as pb

I420 = pb.IMAGE_FORMAT_I420
BGR24 = pb.IMAGE_FORMAT_BGR24


class LayoutError(ValueError):
    """A frame that does not fit the model's layout; the message names the tensor."""


def image_bytes(size: int, image_format: pb.ImageFormat) -> int:
    return size * size * 3 // 2 if image_format == I420 else size * size * 3


def normalise_format(image_format: pb.ImageFormat) -> pb.ImageFormat:
    if image_format == pb.IMAGE_FORMAT_UNSPECIFIED:
        return I420
    if image_format not in (I420, BGR24):
        raise LayoutError(f"crop_format: unknown image format {image_format}")
    return image_format


@dataclass(frozen=True)
class CompactFrame:
    """One frame of the compact exchange, checked against its model's layout."""

    crop: bytes
    crop_format: pb.ImageFormat
    audio: bytes
    output_format: pb.ImageFormat


def validate_compact(spec: ModelSpec, compact: pb.CompactInput) -> CompactFrame:
    """Check byte counts up front (cheap, on the event loop)."""
    crop_format = normalise_format(compact.crop_format)
    requested = compact.output_format
    out_format = crop_format if requested == pb.IMAGE_FORMAT_UNSPECIFIED else normalise_format(requested)
    want_crop = image_bytes(spec.crop_size, crop_format)
    if len(compact.crop) != want_crop:
        raise LayoutError(
            f"crop: expected {want_crop} bytes ({pb.ImageFormat.Name(crop_format)} "
            f"{spec.crop_size}x{spec.crop_size}), got {len(compact.crop)}"
        )
    want_audio = int(np.prod(spec.audio_shape)) * 2
    if len(compact.audio) != want_audio:
        raise LayoutError(
            f"audio: expected {want_audio} bytes (float16 {list(spec.audio_shape)}), got {len(compact.audio)}"
        )
    return CompactFrame(compact.crop, crop_format, compact.audio, out_format)


class CompactLayout:
    """Batch assembly for one model; precomputes the mask once."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        size = spec.crop_size
        x0, y0, x1, y1 = spec.mask
        keep = np.ones((size, size), np.float32)
        keep[y0 : y1 + 1, x0 : x1 + 1] = 0.0
        self._keep_scaled = keep / 255.0
        self._rgb = spec.channel_order == "RGB"

    def decode_crop(self, data: bytes, image_format: pb.ImageFormat, out: np.ndarray) -> None:
        """Decode one crop into `out` (HxWx3 uint8, the model's channel order)."""
        size = self.spec.crop_size
        if image_format == I420:
            planar = np.frombuffer(data, np.uint8).reshape(size * 3 // 2, size)
            code = cv2.COLOR_YUV2RGB_I420 if self._rgb else cv2.COLOR_YUV2BGR_I420
            cv2.cvtColor(planar, code, dst=out)
        else:
            packed = np.frombuffer(data, np.uint8).reshape(size, size, 3)
            if self._rgb:
                cv2.cvtColor(packed, cv2.COLOR_BGR2RGB, dst=out)
            else:
                out[...] = packed

    def build_inputs(self, frames: list[CompactFrame]) -> dict[str, np.ndarray]:
        spec = self.spec
        size = spec.crop_size
        batch = len(frames)
        pixels = np.empty((batch, size, size, 3), np.uint8)
        for index, frame in enumerate(frames):
            self.decode_crop(frame.crop, frame.crop_format, pixels[index])
        planar = pixels.transpose(0, 3, 1, 2)  # B,3,H,W view
        image = np.empty((batch, 6, size, size), np.float32)
        reference, masked = (image[:, 3:], image[:, :3]) if spec.masked_first else (image[:, :3], image[:, 3:])
        np.multiply(planar, np.float32(1.0 / 255.0), out=reference)
        np.multiply(planar, self._keep_scaled, out=masked)
        audio_batch = np.frombuffer(b"".join(f.audio for f in frames), np.float16).reshape(batch, *spec.audio_shape)
        return {spec.image_input: image, spec.audio_input: audio_batch.astype(np.float32)}

    def encode_outputs(self, output: np.ndarray, formats: list[pb.ImageFormat]) -> list[bytes]:
        """[B,3,H,W] float in [0,1] -> one 8-bit crop per frame in its requested format.

        OpenCV does the planar->packed, scale, round and clamp in C++ (3x faster than
        the numpy equivalent, which builds four float temporaries per frame).
        """
        to_i420 = cv2.COLOR_RGB2YUV_I420 if self._rgb else cv2.COLOR_BGR2YUV_I420
        results: list[bytes] = []
        for image, image_format in zip(cv2.dnn.imagesFromBlob(output), formats):
            positive = cv2.threshold(image, 0.0, 0.0, cv2.THRESH_TOZERO)[1]  # max(x, 0)
            pixels = cv2.convertScaleAbs(positive, alpha=255.0)  # |x| of x >= 0: clamp to [0,255]
            if image_format == I420:
                results.append(cv2.cvtColor(pixels, to_i420).tobytes())
            elif self._rgb:
                results.append(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR).tobytes())
            else:
                results.append(pixels.tobytes())
        return results
