"""Blind listening test of the three versions (ITU-R BS.2132 style, MUSHRA's 0–100 scale).

The protocol, with the reason for every rule, is ``shared/LISTENING.md``. Public surface:

- :func:`build.create_test` — clip folders (a ``batch`` output, the app's saved runs) → a test:
  4 blind versions per clip (original, Demucs, spectral gating, 3.5 kHz low anchor), unified and
  loudness-matched 16-bit WAVs under uuid names. CLI: ``python -m restoration listening create``.
- :mod:`.stimuli` — stimulus preparation (:class:`stimuli.StimulusSettings`, ``CONDITIONS``).
- :mod:`.design` — seeded Fisher–Yates trial order and version→letter mapping.
- :mod:`.store` — SQLite (WAL, synchronous=FULL, ``BEGIN IMMEDIATE``, a connection per call):
  sessions, one-time step nonces, idempotent rating writes, snapshot export
  (:func:`store.export_csv`, CLI ``listening export``).
- :mod:`.session` — the participant's flow without Gradio: :func:`session.view`,
  :func:`session.start`, :func:`session.submit`, :func:`session.reveal`.
- :mod:`.stats` — screening (completeness, anchor, agreement), per-listener means, t CIs,
  Friedman, Wilcoxon–Holm: :func:`stats.analyze`; :mod:`.results` formats them.
- :mod:`.ui` — Gradio: :func:`ui.build_listening_tabs`, :func:`ui.make_demo` (the page to share
  with participants; ``python -m restoration.listening.ui``), :func:`ui.add_run_to_pool`.

Gradio is imported only by :mod:`.ui` and :mod:`.admin_ui`.
"""
