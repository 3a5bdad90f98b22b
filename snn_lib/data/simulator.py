"""A simulated event camera that records still images the way N-MNIST was recorded.

N-MNIST (Orchard et al. 2015) was made by moving an ATIS camera in three saccades of about 100 ms
each, along a triangle, in front of MNIST digits on a monitor. Here the camera stays still and the
image moves along the same triangle; the sensor is 34 x 34 pixels, the digit covers 28 x 28.

Image formation, for sensor pixel ``(u, v)`` at time ``t`` (image value ``g`` in [0, 1], after a
Gaussian optics blur of ``blur_px`` pixels, sampled bilinearly at the sub-pixel offset
``s(t) = (s_x, s_y)`` of the image's top-left corner on the sensor)::

    I(u, v, t)  = b + (1 - b) * g(u - s_x(t), v - s_y(t))
                  b = background (monitor black / white)
    L(t)        = ln I(u, v, t)
                  log intensity (log units)
    tau dL_f/dt = L - L_f
                  photoreceptor low pass, tau = lowpass_ms

With ``inverted`` (the default) ``g`` is replaced by ``1 - g``, the screen around the image
included: the polarities of real N-MNIST are those of dark strokes on a bright screen.

Each pixel keeps the filtered log intensity ``L_ref`` at its last event. Whenever::

    L_f - L_ref >= theta_on   it emits an ON event  (p = 1)
                              and L_ref += theta_on
    L_ref - L_f >= theta_off  it emits an OFF event (p = 0)
                              and L_ref -= theta_off

so a large change gives several events, no closer than ``refractory_us`` apart. The thresholds
(log units) differ from pixel to pixel: ``theta = threshold * (1 + threshold_sigma * N(0, 1))``.
Event times are interpolated inside each simulation step of ``dt_us`` microseconds; background
noise adds Poisson events at ``noise_hz`` per pixel with random polarity.

Saccade ``i`` moves the image from vertex ``path_px[i]`` to the next (the last back to the first:
a triangle for three vertices) between ``saccade_start_ms[i]`` and ``saccade_start_ms[i] +
saccade_ms[i]``; its speed rises and falls smoothly (``sin^2``, as a pan-tilt unit) and peaks at
fraction ``saccade_peak[i]`` of the saccade. Each recording's saccades start
``N(0, saccade_jitter_ms)`` early or late, as in real recordings. The defaults were matched to 1,000 real N-MNIST recordings (``scripts/sim_fidelity.py``,
``benchmarks/results/sim_vs_real.md``).

::

    # tonic structured array x, y, t, p
    events = record(image, SimConfig(), np.random.default_rng(0))
    # one event array per image
    batch = record_batch(images, SimConfig(), rngs)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..config import config_to_dict
from ..errors import require
from .nmnist import SENSOR_SIZE, make_events

SIM_VERSION = 1          # bump when a change of this module changes the recordings of the same settings


@dataclass(frozen=True)
class SimConfig:
    """Camera and saccade settings. Thresholds in log-intensity units, times in ms or us."""
    threshold_on: float = 0.32          # contrast threshold of ON events (log units)
    threshold_off: float = 0.33         # contrast threshold of OFF events (log units)
    threshold_sigma: float = 0.05       # per-pixel mismatch, relative std of the thresholds
    refractory_us: int = 1700           # no two events of one pixel closer than this
    noise_hz: float = 0.5               # background events per pixel per second
    background: float = 0.1             # monitor black level as a fraction of white (> 0)
    blur_px: float = 0.0                # optics blur, Gaussian std in sensor pixels
    lowpass_ms: float = 2.0             # photoreceptor time constant
    image_px: int = 28                  # sensor pixels covered by the image (longer side)
    inverted: bool = True               # dark strokes on a bright screen (real N-MNIST's polarities)
    path_px: tuple[tuple[float, float], ...] = ((0.6, 1.2), (2.0, 6.5), (5.6, 1.3))  # (x, y) vertices
    saccade_start_ms: tuple[float, ...] = (0.0, 110.0, 224.0)
    saccade_ms: tuple[float, ...] = (84.0, 76.0, 80.0)   # duration of each saccade
    saccade_peak: tuple[float, ...] = (0.65, 0.5, 0.25)   # when each saccade is fastest (fraction)
    saccade_jitter_ms: float = 3.0      # per recording, each saccade starts N(0, jitter) ms late/early
    duration_ms: float = 310.0          # length of a recording
    dt_us: int = 1000                   # simulation step

    def validate(self) -> "SimConfig":
        """Refuse settings that cannot work, with a message naming the setting. Returns self."""
        require(self.threshold_on > 0, "SimConfig.threshold_on", self.threshold_on, "a positive log contrast, e.g. 0.25")
        require(self.threshold_off > 0, "SimConfig.threshold_off", self.threshold_off, "a positive log contrast, e.g. 0.25")
        require(0 <= self.threshold_sigma < 1, "SimConfig.threshold_sigma", self.threshold_sigma, "a fraction in [0, 1)")
        require(self.refractory_us >= 0, "SimConfig.refractory_us", self.refractory_us, "0 or a time in microseconds")
        require(self.noise_hz >= 0, "SimConfig.noise_hz", self.noise_hz, "0 or a rate in events per pixel per second")
        require(0 < self.background < 1, "SimConfig.background", self.background, "a level in (0, 1), e.g. 0.1")
        require(self.blur_px >= 0, "SimConfig.blur_px", self.blur_px, "0 or a blur in pixels")
        require(self.lowpass_ms >= 0, "SimConfig.lowpass_ms", self.lowpass_ms, "0 (off) or a time in ms")
        require(1 <= self.image_px <= max(SENSOR_SIZE[:2]), "SimConfig.image_px", self.image_px,
                f"a size from 1 to {max(SENSOR_SIZE[:2])} pixels")
        n = len(self.path_px)
        require(n >= 2 and all(len(v) == 2 for v in self.path_px), "SimConfig.path_px", self.path_px,
                "at least two (x, y) vertices, e.g. ((0.6, 1.2), (2.0, 6.5), (5.6, 1.3))")
        require(len(self.saccade_start_ms) == n and len(self.saccade_ms) == n, "SimConfig.saccade_start_ms/saccade_ms",
                (self.saccade_start_ms, self.saccade_ms), f"one start and one duration per vertex ({n})")
        require(all(d > 0 for d in self.saccade_ms), "SimConfig.saccade_ms", self.saccade_ms, "positive durations")
        require(len(self.saccade_peak) == n and all(0 < p < 1 for p in self.saccade_peak), "SimConfig.saccade_peak",
                self.saccade_peak, f"{n} fractions in (0, 1), e.g. 0.5 for a symmetric speed profile")
        require(self.saccade_jitter_ms >= 0, "SimConfig.saccade_jitter_ms", self.saccade_jitter_ms, "0 or a time in ms")
        require(0 < self.duration_ms * 1000 < 2**23, "SimConfig.duration_ms", self.duration_ms,
                "a positive length below 8388 ms (the 23-bit N-MNIST timestamp)")
        require(self.dt_us >= 1, "SimConfig.dt_us", self.dt_us, "a step of at least 1 microsecond")
        return self


def sim_settings(cfg: SimConfig) -> dict:
    """A plain, JSON-ready dict of the settings and the simulator version (for hashing, logs)."""
    return {"sim_version": SIM_VERSION, **config_to_dict(cfg)}


def saccade_offset(t_ms: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Offset ``(x, y)`` in sensor pixels of the image's top-left corner at times ``t_ms``: ``[K] -> [K, 2]``."""
    t_ms = np.asarray(t_ms, dtype=np.float64)
    path = np.asarray(cfg.path_px, dtype=np.float64)             # [V, 2]
    pos = np.repeat(path[:1], len(t_ms), axis=0)                 # [K, 2]
    for i, (start, length, peak) in enumerate(zip(cfg.saccade_start_ms, cfg.saccade_ms, cfg.saccade_peak)):
        a, b = path[i], path[(i + 1) % len(path)]
        tau = np.clip((t_ms - start) / length, 0.0, 1.0)
        moving = t_ms >= start
        pos[moving] = (a + (b - a) * travelled(tau, peak)[:, None])[moving]
    return pos


def travelled(tau: np.ndarray, peak: float) -> np.ndarray:
    """Fraction of a saccade's path covered at time fraction ``tau`` in [0, 1].

    The speed rises as ``sin^2`` to its maximum at ``tau = peak`` and falls as ``sin^2`` to 0 at
    ``tau = 1``; this is its integral, normalised to end at 1 (``peak = 0.5``: symmetric).
    """
    rise = tau < peak
    before = tau - peak / np.pi * np.sin(np.pi * tau / peak)
    u = tau - peak
    after = peak + u + (1 - peak) / np.pi * np.sin(np.pi * u / (1 - peak))
    return np.where(rise, before, after)


def prepare_images(images: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Images ``[N, H, W]`` (uint8 0-255 or float 0-1) -> float32 values in [0, 1] ``[N, image_px, image_px]``."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1] == 0 or images.shape[2] == 0:
        raise ValueError(f"images of shape {images.shape}: expected [N, H, W] grey-level images "
                         "(one 2-D array per image, non-empty)")
    if images.dtype == bool:
        images = images.astype(np.float32)
    if not np.issubdtype(images.dtype, np.number) or not np.isfinite(images).all():
        raise ValueError("images hold non-numeric or non-finite values: expected grey levels 0-255 or 0-1")
    g = images.astype(np.float32)
    if len(g) == 0:
        return np.zeros((0, cfg.image_px, cfg.image_px), np.float32)
    if images.dtype == np.uint8 or g.max() > 1.0:
        g = g / 255.0
    if g.min() < 0 or g.max() > 1:
        raise ValueError(f"image values span [{g.min():.3g}, {g.max():.3g}]: expected 0-255 or 0-1")
    h, w = g.shape[1:]
    if (h, w) != (cfg.image_px, cfg.image_px):
        scale = cfg.image_px / max(h, w)
        g = ndimage.zoom(g, (1, scale, scale), order=1, grid_mode=True, mode="grid-constant")
        out = np.zeros((len(g), cfg.image_px, cfg.image_px), np.float32)
        oy, ox = (cfg.image_px - g.shape[1]) // 2, (cfg.image_px - g.shape[2]) // 2
        out[:, oy:oy + g.shape[1], ox:ox + g.shape[2]] = g[:, :cfg.image_px, :cfg.image_px]
        g = np.clip(out, 0, 1)
    return g


class _Sampler:
    """Bilinear samples of padded, blurred intensity images at a sub-pixel offset."""

    def __init__(self, g: np.ndarray, cfg: SimConfig):
        width, height, _ = SENSOR_SIZE
        self.pad = pad = int(np.ceil(np.abs(np.asarray(cfg.path_px)).max())) + 2
        n, s, _ = g.shape
        canvas = np.zeros((n, s + 2 * pad + height, s + 2 * pad + width), np.float32)  # generous margins
        canvas[:, pad:pad + s, pad:pad + s] = g
        if cfg.inverted:
            canvas = 1 - canvas
        if cfg.blur_px > 0:
            canvas = ndimage.gaussian_filter(canvas, (0, cfg.blur_px, cfg.blur_px), mode="constant")
        self.intensity = cfg.background + (1 - cfg.background) * canvas   # [N, Hc, Wc]
        self.shape = (height, width)

    def __call__(self, sx: float, sy: float) -> np.ndarray:
        """Intensity on the sensor ``[N, 34, 34]`` with the image's corner at ``(sx, sy)``."""
        h, w = self.shape
        cx, cy = self.pad - sx, self.pad - sy                # padded coordinate of sensor pixel 0
        ix, iy = int(np.floor(cx)), int(np.floor(cy))
        fx, fy = np.float32(cx - ix), np.float32(cy - iy)
        p = self.intensity[:, iy:iy + h + 1, ix:ix + w + 1]   # [N, h+1, w+1]
        top = p[:, :h, :w] * (1 - fx) + p[:, :h, 1:] * fx
        bottom = p[:, 1:, :w] * (1 - fx) + p[:, 1:, 1:] * fx
        return top * (1 - fy) + bottom * fy


def record_batch(images: np.ndarray, cfg: SimConfig,
                 rngs: np.random.Generator | Sequence[np.random.Generator]) -> list[np.ndarray]:
    """Record each image ``[N, H, W]`` once; returns N tonic event arrays (x, y, t in us, p).

    ``rngs``: one generator per image (a recording then depends only on its own generator), or one
    generator from which N are spawned. Every pixel of every image advances together, one
    ``dt_us`` step at a time.
    """
    cfg.validate()
    g = prepare_images(images, cfg)
    n = len(g)
    if isinstance(rngs, np.random.Generator):
        rngs = rngs.spawn(n)
    if len(rngs) != n:
        raise ValueError(f"{len(rngs)} random generators for {n} images: pass one per image")
    width, height, _ = SENSOR_SIZE
    shape = (n, height, width)

    # per-pixel thresholds [N, H, W], drawn per recording
    noise = np.stack([r.standard_normal((2, height, width), dtype=np.float32) for r in rngs])
    rel = np.clip(1 + cfg.threshold_sigma * noise, 0.2, None)
    theta_on, theta_off = cfg.threshold_on * rel[:, 0], cfg.threshold_off * rel[:, 1]

    sample = _Sampler(g, cfg)
    dt_us = cfg.dt_us
    n_steps = int(np.ceil(cfg.duration_ms * 1000 / dt_us))
    t_us = np.arange(n_steps + 1) * dt_us                                # [K+1]
    offsets = saccade_offset(t_us / 1000.0, cfg)                        # [K+1, 2]
    alpha = 1.0 if cfg.lowpass_ms == 0 else float(-np.expm1(-dt_us / (cfg.lowpass_ms * 1000)))

    # state per pixel, flat [N * H * W]: filtered log intensity, its level at the last event, that time
    level = np.log(sample(*offsets[0])).ravel()
    ref = level.copy()
    last = np.full(level.shape, -np.inf, np.float32)
    theta_on, theta_off = theta_on.ravel(), theta_off.ravel()
    theta_min = np.minimum(theta_on, theta_off)
    target = level.copy()
    found: list[tuple[np.ndarray, ...]] = []
    for k in range(1, n_steps + 1):
        previous = level.copy()
        if not np.array_equal(offsets[k], offsets[k - 1]):      # the image moved: new intensities
            target = np.log(sample(*offsets[k])).ravel()
        level += np.float32(alpha) * (target - level)
        cand = np.flatnonzero(np.abs(level - ref) >= theta_min)
        while cand.size:   # one event per pixel per pass; a large change may fire again
            diff = level[cand] - ref[cand]
            on = diff >= theta_on[cand]
            keep = on | (diff <= -theta_off[cand])
            cand, on = cand[keep], on[keep]
            crossing = ref[cand] + np.where(on, theta_on[cand], -theta_off[cand])
            change = level[cand] - previous[cand]
            frac = np.clip((crossing - previous[cand]) / np.where(change == 0, 1, change), 0.0, 1.0)
            ts = np.maximum(t_us[k - 1] + frac * dt_us, last[cand] + cfg.refractory_us)
            keep = ts <= t_us[k]
            cand, on, ts = cand[keep], on[keep], ts[keep]
            ref[cand] = crossing[keep]
            last[cand] = ts
            found.append((cand, ts, on))
    if found:
        flat, ts, p = (np.concatenate(column) for column in zip(*found))
    else:
        flat, ts, p = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool)
    order = np.argsort(flat, kind="stable")              # group the events by recording
    flat, ts, p = flat[order], ts[order], p[order]
    b, y, x = np.unravel_index(flat, shape)
    bounds = np.searchsorted(b, np.arange(n + 1))

    out = []
    duration_us = cfg.duration_ms * 1000
    starts_us = np.asarray(cfg.saccade_start_ms) * 1000
    for i, rng in enumerate(rngs):
        mine = slice(bounds[i], bounds[i + 1])
        xs, ys, tss, ps = x[mine], y[mine], ts[mine], p[mine]
        if cfg.saccade_jitter_ms > 0:       # the image is still between saccades: shifting a saccade's
            shift = rng.normal(0.0, cfg.saccade_jitter_ms * 1000, len(cfg.saccade_ms))   # events moves it
            tss = tss + shift[np.searchsorted(starts_us[1:], tss, side="right")]
        n_noise = rng.poisson(cfg.noise_hz * width * height * cfg.duration_ms / 1000)
        if n_noise:
            xs = np.concatenate([xs, rng.integers(0, width, n_noise)])
            ys = np.concatenate([ys, rng.integers(0, height, n_noise)])
            tss = np.concatenate([tss, rng.uniform(0, duration_us, n_noise)])
            ps = np.concatenate([ps, rng.integers(0, 2, n_noise)])
        t_int = np.clip(np.round(tss), 0, duration_us - 1).astype(np.int64)
        ps = ps.astype(np.int64)
        order = np.lexsort((ps, ys, xs, t_int))       # by t, ties by x, y, p: write_events keeps this order
        out.append(make_events(xs[order], ys[order], t_int[order], ps[order]))
    return out


def record(image: np.ndarray, cfg: SimConfig = SimConfig(),
           rng: np.random.Generator | None = None) -> np.ndarray:
    """Events (tonic structured array x, y, t in us, p) of one 2-D image ``[H, W]`` seen in three saccades."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image of shape {image.shape}: expected one 2-D grey-level image [H, W]")
    if image.size == 0:
        raise ValueError("image is empty (shape {}): expected a 2-D grey-level image".format(image.shape))
    return record_batch(image[None], cfg, [rng if rng is not None else np.random.default_rng(0)])[0]


__all__ = ["SIM_VERSION", "SimConfig", "prepare_images", "record", "record_batch", "saccade_offset",
           "sim_settings"]
