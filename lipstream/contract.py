"""The lip-sync model contract (SyncTalk_2D's layout), shared by the edge and the inference tier.

Crop: each avatar frame's square box is resized to `CROP_BOX` pixels and the model sees the
inner `MODEL_CROP` (a `CROP_MARGIN` border dropped). Its `image` input stacks the reference
crop and the same crop with `MASK` zeroed (BGR, /255); `output` is the predicted crop.

Audio: one `VECTOR_SIZE`-d vector per 25 fps video frame (from a [N_MELS, MEL_SPAN] mel
window); frame i's model window stacks the vectors of frames i-8 .. i+7, reshaped to
`AUDIO_WINDOW_SHAPE`. Component `ENERGY_COMPONENT` of a vector is its frame's speech energy
(the built-in encoder's promise, which the bundled parametric-mouth model reads).

Other models differ (crop size, channel order, mask, audio shape, tensor names): the
inference tier keeps those per model in config, with these values as the defaults.
"""

from __future__ import annotations

from typing import Literal

# Crop geometry, in pixels of the resized box.
CROP_BOX = 328
CROP_MARGIN = 4
MODEL_CROP = CROP_BOX - 2 * CROP_MARGIN  # 320
MASK = (5, 5, 314, 309)  # x0, y0, x1, y1 inclusive, inside the model crop
CHANNEL_ORDER: Literal["BGR", "RGB"] = "BGR"

# Where the avatar box puts the mouth, in the model crop (avatar preparation places boxes so,
# and the parametric-mouth model opens the mouth there).
MOUTH_CENTRE_IN_CROP = (160, 176)

# Tensors.
IMAGE_INPUT = "input"
AUDIO_INPUT = "audio"
OUTPUT = "output"
IMAGE_CHANNELS = 6  # reference, then masked
OUTPUT_CHANNELS = 3

# Audio window.
N_MELS = 80
MEL_SPAN = 16  # mel columns per vector (an audio encoder's [1, N_MELS, MEL_SPAN] input)
VECTOR_SIZE = 512
WINDOW_FRAMES_BEFORE = 8
WINDOW_FRAMES_AFTER = 7
WINDOW_FRAMES = WINDOW_FRAMES_BEFORE + 1 + WINDOW_FRAMES_AFTER  # 16
AUDIO_WINDOW_SHAPE = (32, 16, 16)  # WINDOW_FRAMES * VECTOR_SIZE values, as the model takes them
CENTRE_FRAME = WINDOW_FRAMES_BEFORE  # the window's own frame
ENERGY_COMPONENT = 0

# Frames of future audio a window can reach: vector i+7 reads mel columns up to int(3.2 (i+7)) + 15,
# whose STFT frame ends 10.7 video frames after frame i ends. A model whose look-ahead is not
# known is given this much, which makes every window exact.
FULL_WINDOW_LOOKAHEAD_FRAMES = 11

# What the bundled models need (the inference tier declares every model's; the edge falls back on
# these when it cannot ask): parametric-mouth reads its centre frame's energy, 16 mel columns that
# end a frame ahead; synthetic-unet, SyncTalk_2D's shape, reads the whole window with a margin.
BUILTIN_LOOKAHEAD_FRAMES = {"parametric-mouth": 1, "synthetic-unet": 13}
