"""Blind listening test of the three versions (ITU-R BS.2132 style, MUSHRA's 0–100 scale).

The protocol, with the reason for every rule, is ``docs/LISTENING.md``. Condition names and titles
come from :mod:`restoration.versions`. Modules, from storage up:

- :mod:`.db` — the SQLite file, its schema, connections and ``BEGIN IMMEDIATE`` transactions.
- :mod:`.stimuli` — clip folders → unified, loudness-matched 16-bit WAVs under uuid names.
- :mod:`.design` — seeded Fisher–Yates trial order and version→letter mapping.
- :mod:`.build` — :func:`build.create_test` (CLI ``python -m restoration listening create``).
- :mod:`.store` — tests, the run pool, sessions, per-listener aliases, play events, ratings.
- :mod:`.heard` — whether a version was heard, from play events by the server's clock.
- :mod:`.auth` — participant tokens, step nonces, the admin token, one-time export tickets.
- :mod:`.export` — long-format CSV from a consistent snapshot (CLI ``listening export``).
- :mod:`.stats` — screening (completeness, anchor, agreement), per-listener means with t CIs
  (:mod:`restoration.stats`), Friedman, Wilcoxon–Holm; :mod:`.results` formats them.
- :mod:`.session` — the participant's flow without Gradio: view, start, submit, reveal.
- :mod:`.pool` — :func:`pool.add_run_to_pool`, behind the app's "Add to listening test".
- :mod:`.web` — plain HTTP routes: the sounds, their play events, the export download.
- :mod:`.ui` — the participant page (Gradio); :func:`ui.mount_participant_page`;
  ``python -m restoration.listening.ui`` serves it standalone.
- :mod:`.admin_ui` — the organiser's "Listening results" tab of the main app.

Gradio is imported only by :mod:`.ui` and :mod:`.admin_ui`, which do not import each other.
"""
