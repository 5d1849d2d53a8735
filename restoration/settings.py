"""Settings that travel together, one frozen dataclass per concern.

Each is hashable, so a settings object can key a cache, and ``dataclasses.asdict``
turns it into the ``settings`` block of ``report.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import BadInputError

MIN_DURATION_S = 1.0
MAX_DURATION_S = 30.0
MAX_PROMPT_CHARS = 500
GENERATION_MODES = ("exact", "fast")


@dataclass(frozen=True)
class GenerationSettings:
    """MusicGen sampling settings.

    ``guidance_scale`` is classifier-free guidance (1 disables it), ``temperature`` and
    ``top_k`` shape the sampling; ``mode`` is ``"exact"`` (fp32) or ``"fast"`` (int8 decoder).
    """

    duration_s: float = 5.0
    seed: int = 0
    guidance_scale: float = 3.0
    temperature: float = 1.0
    top_k: int = 250
    mode: str = "exact"

    def __post_init__(self):
        validate_duration(self.duration_s)
        if self.mode not in GENERATION_MODES:
            raise BadInputError(f"generation mode must be one of {GENERATION_MODES}, got {self.mode!r}")
        if not self.guidance_scale >= 1.0:
            raise BadInputError(f"guidance scale must be ≥ 1, got {self.guidance_scale}")
        if not self.temperature > 0.0:
            raise BadInputError(f"temperature must be > 0, got {self.temperature}")
        if int(self.top_k) < 1:
            raise BadInputError(f"top-k must be ≥ 1, got {self.top_k}")
        if int(self.seed) < 0:
            raise BadInputError(f"seed must be ≥ 0, got {self.seed}")


@dataclass(frozen=True)
class DemucsSettings:
    """Demucs zero-shot restoration settings.

    ``stem_gains`` maps stem name → linear gain applied before the stems are summed
    (missing stems get 1.0). ``shifts`` is demucs's random-shift trick (0 = off),
    ``overlap`` the chunk overlap fraction, ``seed`` fixes the random shifts.
    """

    shifts: int = 0
    overlap: float = 0.25
    seed: int = 0
    stem_gains: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        if int(self.shifts) < 0:
            raise BadInputError(f"shifts must be ≥ 0, got {self.shifts}")
        if not 0.0 <= float(self.overlap) < 1.0:
            raise BadInputError(f"overlap must be in [0, 1), got {self.overlap}")
        for name, gain in self.stem_gains:
            if not (gain >= 0.0 and gain < float("inf")):
                raise BadInputError(f"stem gain for {name!r} must be a finite number ≥ 0, got {gain}")

    def gain(self, stem: str) -> float:
        return dict(self.stem_gains).get(stem, 1.0)


@dataclass(frozen=True)
class GatingSettings:
    """Spectral-gating (noisereduce) settings.

    ``stationary`` picks stationary gating (noise estimated from the whole clip) over the
    non-stationary default; ``prop_decrease`` is the fraction of gated noise removed (0–1);
    ``threshold_std`` is the gate threshold in standard deviations above the noise mean
    (noisereduce's ``n_std_thresh_stationary`` / ``thresh_n_mult_nonstationary``); ``None``
    keeps noisereduce's default for the mode. The default, non-stationary gating with
    noisereduce's defaults, is the seed paper's baseline.
    """

    stationary: bool = False
    prop_decrease: float = 1.0
    threshold_std: float | None = None

    def __post_init__(self):
        if not 0.0 <= float(self.prop_decrease) <= 1.0:
            raise BadInputError(f"gating strength (prop_decrease) must be in [0, 1], got {self.prop_decrease}")
        if self.threshold_std is not None and not float(self.threshold_std) > 0.0:
            raise BadInputError(f"gating threshold must be > 0, got {self.threshold_std}")

    def resolved_threshold_std(self) -> float:
        """The threshold actually used: noisereduce's default for the mode (1.5 stationary, 2 non-stationary)."""
        if self.threshold_std is not None:
            return float(self.threshold_std)
        return 1.5 if self.stationary else 2.0


@dataclass(frozen=True)
class MetricSettings:
    """Analysis settings shared by every version.

    ``hber_cutoff_hz``: the high-band edge of ΔHBER (default 8 kHz).
    ``frame_s``: the frame length of the noise-floor metrics (50 ms).
    ``silence_gate_dbfs``: frames below this RMS count as "silent" for the paper's noise floor.
    ``max_band_hz``: spectral metrics are limited to min(max_band_hz, 0.47 × rate).
    """

    hber_cutoff_hz: float = 8000.0
    frame_s: float = 0.05
    silence_gate_dbfs: float = -45.0
    max_band_hz: float = 15000.0
    n_fft: int = 2048
    hop_length: int = 512
    hber_bands_hz: tuple[tuple[float, float], ...] = field(
        default=((4000.0, 8000.0), (8000.0, 12000.0), (12000.0, 15000.0))
    )

    def __post_init__(self):
        if not float(self.hber_cutoff_hz) > 0:
            raise BadInputError(f"HBER cutoff must be > 0 Hz, got {self.hber_cutoff_hz}")

    def band_limit_hz(self, sample_rate: int) -> float:
        """Upper edge of the analysis band: min(max_band_hz, 0.47 × sample_rate)."""
        return float(min(self.max_band_hz, 0.47 * sample_rate))


def validate_duration(duration_s) -> float:
    """Return ``duration_s`` as float seconds, or raise if it is not a number in [1, 30]."""
    try:
        value = float(duration_s)
    except (TypeError, ValueError):
        raise BadInputError(f"duration must be a number of seconds, got {duration_s!r}") from None
    if not (MIN_DURATION_S <= value <= MAX_DURATION_S):
        raise BadInputError(f"duration must be between {MIN_DURATION_S:g} and {MAX_DURATION_S:g} s, got {duration_s}")
    return value


def validate_prompt(prompt) -> str:
    """Return the stripped prompt, or raise if it is empty, blank or over 500 characters."""
    if prompt is None or not str(prompt).strip():
        raise BadInputError("the prompt is empty: describe the music, e.g. 'lofi hip hop with mellow piano'")
    text = str(prompt).strip()
    if len(text) > MAX_PROMPT_CHARS:
        raise BadInputError(f"the prompt has {len(text)} characters; at most {MAX_PROMPT_CHARS} are allowed")
    return text


# --------------------------------------------------------------------------- from user-facing values

#: Demucs's four stems, in the order the app shows their gains.
STEMS = ("drums", "bass", "other", "vocals")
GATING_MODES = ("nonstationary", "stationary")


def parse_number(value, name: str, *, kind=float):
    """``value`` (a number or its text) as ``kind``, or a :class:`BadInputError` naming ``name``.

    Missing (None, blank), unparsable and non-finite values are refused.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadInputError(f"{name} is missing")
    try:
        number = kind(float(value))
    except (TypeError, ValueError, OverflowError):
        raise BadInputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise BadInputError(f"{name} must be a finite number, got {value!r}")
    return number


def generation_settings(*, duration_s, seed=0, guidance_scale=3.0, temperature=1.0, top_k=250,
                        mode: str = "exact") -> GenerationSettings:
    """MusicGen's settings from user-facing values: the one builder of the CLI and the app.

    Numbers may arrive as text (widgets, options); ``duration_s`` goes through
    :func:`validate_duration`, the others through :func:`parse_number`. ``mode`` is taken as
    given (resolve it first with :func:`restoration.generation.resolve_mode`).
    """
    return GenerationSettings(duration_s=validate_duration(duration_s), seed=parse_number(seed, "seed", kind=int),
                              guidance_scale=parse_number(guidance_scale, "guidance"),
                              temperature=parse_number(temperature, "temperature"),
                              top_k=parse_number(top_k, "top-k", kind=int), mode=mode)


def restoration_settings(
    *,
    shifts=0,
    overlap=0.25,
    stem_gains=None,
    gating: str = "nonstationary",
    gating_strength=1.0,
    gating_threshold_std=None,
    hber_cutoff_hz=8000.0,
    seed: int = 0,
) -> tuple[DemucsSettings, GatingSettings, MetricSettings]:
    """The Demucs, gating and metric settings from user-facing values: the one builder of the CLI and the app.

    Numbers may arrive as text (widgets, options); each is parsed with :func:`parse_number`.
    ``stem_gains`` maps stem → linear gain (a dict or ``(stem, gain)`` pairs); unit gains are
    dropped and the rest sorted, so equal settings compare, hash and cache equal.
    ``gating`` is ``"nonstationary"`` (the seed paper's baseline) or ``"stationary"``;
    ``gating_threshold_std`` None (or blank) keeps noisereduce's default for the mode;
    ``seed`` fixes Demucs's random shifts.
    """
    pairs = stem_gains.items() if isinstance(stem_gains, dict) else (stem_gains or ())
    gains = []
    for stem, gain in pairs:
        gain = parse_number(gain, f"gain of {stem}")
        if gain != 1.0:
            gains.append((str(stem), gain))
    if gating not in GATING_MODES:
        raise BadInputError(f"gating must be 'nonstationary' or 'stationary', got {gating!r}")
    blank = gating_threshold_std is None or (isinstance(gating_threshold_std, str) and not gating_threshold_std.strip())
    demucs = DemucsSettings(shifts=parse_number(shifts, "Demucs shifts", kind=int),
                            overlap=parse_number(overlap, "Demucs overlap"), seed=int(seed),
                            stem_gains=tuple(sorted(gains)))
    gate = GatingSettings(stationary=gating == "stationary",
                          prop_decrease=parse_number(gating_strength, "gating strength"),
                          threshold_std=None if blank else parse_number(gating_threshold_std, "gating threshold"))
    metrics = MetricSettings(hber_cutoff_hz=parse_number(hber_cutoff_hz, "HBER cutoff"))
    return demucs, gate, metrics
