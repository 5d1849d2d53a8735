"""Random-weight stand-ins for MusicGen and Demucs, saved so they load exactly as real weights do.

Not used at run time. The tests build tiny ones (:func:`musicgen.build_tiny_musicgen`,
:func:`demucs.build_tiny_demucs_repo`); the benchmark builds full-size ones
(:func:`musicgen.build_musicgen_small_random`, :func:`demucs.build_htdemucs_random`), which cost
the same compute as the trained models.
"""
