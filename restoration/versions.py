"""Names and titles of the versions a comparison produces, defined once.

A comparison has three *versions* of one clip, each float32 ``(channels, frames)`` at the input's
rate: the input (MusicGen's output, or an uploaded file), the Demucs restoration and the
spectral-gating restoration. The listening test calls the input the *original* and adds a low
*anchor*; those *conditions* are defined here too, with the map between the two vocabularies.
Every module that names or titles a version imports it from here.
"""

from __future__ import annotations

INPUT = "input"
DEMUCS = "demucs"
GATING = "spectral_gating"

#: The versions of one comparison, in display order.
VERSIONS = (INPUT, DEMUCS, GATING)
#: The versions that are restorations of the input.
RESTORATIONS = (DEMUCS, GATING)

#: Short titles, for column heads, plot titles and legends.
TITLES = {INPUT: "Input", DEMUCS: "Demucs", GATING: "Spectral gating"}
#: One line on how each version is made.
DESCRIPTIONS = {
    INPUT: "the clip as generated (or uploaded), unprocessed",
    DEMUCS: "the sum of the stems Demucs separates; what no stem holds is dropped",
    GATING: "noisereduce's spectral gate, the seed paper's baseline",
}
#: One colour per version, for every figure.
COLORS = {INPUT: "#444444", DEMUCS: "#1f77b4", GATING: "#d62728"}
#: The analysis file of each version in a run folder.
FILES = {INPUT: "input.wav", DEMUCS: "demucs.wav", GATING: "spectral_gating.wav"}


def version_title(version: str, *, kind: str = "file") -> str:
    """The column title of ``version``; a generated input is titled "Input (MusicGen)"."""
    if version == INPUT and kind == "prompt":
        return "Input (MusicGen)"
    return TITLES[version]


# The ground-truth study (restoration.groundtruth): clean music is degraded, and the degraded clip
# is the input the two restorations start from. "clean" is the reference every version is compared with.
CLEAN = "clean"
DEGRADED = "degraded"
#: The versions of a ground-truth comparison, in display order.
GROUND_TRUTH_VERSIONS = (CLEAN, DEGRADED, DEMUCS, GATING)
TITLES.update({CLEAN: "Clean original", DEGRADED: "Degraded"})
COLORS.update({CLEAN: "#2ca02c", DEGRADED: "#444444"})
DESCRIPTIONS.update({
    CLEAN: "the clean music, the reference every version is compared with",
    DEGRADED: "the clean music after the degradation (e.g. MusicGen's own codec); the restorations' input",
})
FILES.update({CLEAN: "clean.wav", DEGRADED: "degraded.wav"})

# The listening test's conditions. "original" is the input version, unprocessed.
ORIGINAL = "original"
ANCHOR = "anchor"
#: Every condition a listener rates, anchor included.
CONDITIONS = (ORIGINAL, DEMUCS, GATING, ANCHOR)
#: The conditions that are compared (the anchor is for screening only).
REAL_CONDITIONS = (ORIGINAL, DEMUCS, GATING)
#: The version each real condition is made from.
CONDITION_VERSION = {ORIGINAL: INPUT, DEMUCS: DEMUCS, GATING: GATING}
#: Short condition titles for tables and plots.
CONDITION_SHORT = {ORIGINAL: "Original", DEMUCS: "Demucs", GATING: "Spectral gating", ANCHOR: "Anchor"}
#: Long condition titles, shown to organisers and, after the test, to listeners.
CONDITION_TITLES = {
    ORIGINAL: "Original (MusicGen output, unprocessed)",
    DEMUCS: "Demucs (sum of separated stems)",
    GATING: "Spectral gating (noisereduce)",
    ANCHOR: "Low anchor (original low-passed at 3.5 kHz)",
}
