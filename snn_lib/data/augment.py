"""Event augmentation: new training recordings from old ones, before framing.

Each augmentation is one of tonic's transforms (or, for ``shift``, a small one of ours: tonic 1.x
has no random translation), applied to a recording's events ``(x, y, t, p)``:

==================  ==================================================================
``shift``           move the whole recording by up to ``MAX_SHIFT_PX`` pixels in x and y
                    (the same random shift for every event); events leaving the 34 x 34
                    sensor are dropped
``spatial_jitter``  ``tonic.transforms.SpatialJitter``: move each event by a Gaussian
                    offset (variance ``SPATIAL_VAR_PX2`` px^2, truncated to whole pixels by
                    the integer coordinates), dropping those that leave
``time_jitter``     ``tonic.transforms.TimeJitter``: add Gaussian noise of ``TIME_STD_US``
                    microseconds to each timestamp
``drop_event``      ``tonic.transforms.DropEvent``: drop a random fraction (up to
                    ``DROP_EVENT_P``) of the events
``drop_pixel``      ``tonic.transforms.RandomDropPixel``: silence each pixel with
                    probability ``DROP_PIXEL_P``
``noise``           ``tonic.transforms.UniformNoise``: add up to ``NOISE_EVENTS`` events
                    uniform in x, y, t and polarity
==================  ==================================================================

A time scaling (``tonic.transforms.TimeSkew``) is not offered: frames are cut into
``n_time_bins`` equal windows from the first to the last event, so stretching time changes no
frame at all.

The random draws are a function of ``(seed, epoch, index of the recording)`` only, so an epoch's
augmented frames are the same whichever process or worker computes them, and a resumed run sees
what the uninterrupted one saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tonic.transforms as tt

from .nmnist import SENSOR_SIZE

MAX_SHIFT_PX = 3
SPATIAL_VAR_PX2 = 0.5
TIME_STD_US = 2000.0
DROP_EVENT_P = 0.2
DROP_PIXEL_P = 0.05
NOISE_EVENTS = 200


class RandomShift:
    """Move every event of a recording by the same random ``(dx, dy)``, each drawn uniformly from
    ``-max_px .. max_px``; events that leave the sensor are dropped."""

    def __init__(self, sensor_size: tuple[int, int, int] = SENSOR_SIZE, max_px: int = MAX_SHIFT_PX):
        self.sensor_size, self.max_px = sensor_size, max_px

    def __call__(self, events: np.ndarray) -> np.ndarray:
        dx, dy = np.random.randint(-self.max_px, self.max_px + 1, size=2)
        x, y = events["x"].astype(np.int64) + dx, events["y"].astype(np.int64) + dy
        keep = (x >= 0) & (x < self.sensor_size[0]) & (y >= 0) & (y < self.sensor_size[1])
        out = events[keep].copy()
        out["x"], out["y"] = x[keep], y[keep]
        return out


def augmentation(names: Sequence[str]) -> tt.Compose:
    """The transform of ``data.augment`` (names of :data:`snn_lib.config.AUGMENTATIONS`, applied
    in the order :data:`snn_lib.config.AUGMENTATIONS` lists them)."""
    from ..config import AUGMENTATIONS
    steps = {"shift": RandomShift(),
             "spatial_jitter": tt.SpatialJitter(SENSOR_SIZE, var_x=SPATIAL_VAR_PX2, var_y=SPATIAL_VAR_PX2,
                                                clip_outliers=True),
             "time_jitter": tt.TimeJitter(std=TIME_STD_US, clip_negative=True, sort_timestamps=True),
             "drop_event": tt.DropEvent(p=(0.0, DROP_EVENT_P)),
             "drop_pixel": tt.RandomDropPixel(p=DROP_PIXEL_P, sensor_size=SENSOR_SIZE),
             "noise": tt.UniformNoise(SENSOR_SIZE, n=(0, NOISE_EVENTS))}
    return tt.Compose([steps[name] for name in AUGMENTATIONS if name in names])


def augment_events(events: np.ndarray, names: Sequence[str], seed: int, epoch: int, index: int) -> np.ndarray:
    """``events`` after the augmentations ``names``, drawn from ``(seed, epoch, index)`` alone.

    tonic's transforms draw from NumPy's global generator: it is seeded for this recording and
    restored afterwards, so the caller's random state is left as it was."""
    if not names or len(events) == 0:
        return events
    state = np.random.get_state()
    try:
        np.random.seed(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
        out = augmentation(names)(events)
    finally:
        np.random.set_state(state)
    order = np.argsort(out["t"], kind="stable")         # noise and jitter leave times out of order
    return out[order]


__all__ = ["DROP_EVENT_P", "DROP_PIXEL_P", "MAX_SHIFT_PX", "NOISE_EVENTS", "RandomShift", "SPATIAL_VAR_PX2",
           "TIME_STD_US", "augment_events", "augmentation"]
