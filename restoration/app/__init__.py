"""What the Gradio app (``app.py``) needs around the pipeline, one concern per module.

``app.py`` lays out widgets and translates between them and these modules:

- :mod:`.requests` — widget values → a validated :class:`~.requests.RunRequest`
  (:func:`~.requests.prompt_request`, :func:`~.requests.restore_request`);
- :mod:`.run_cache` — the run folders: a request's key names its folder, a complete one is
  served again (:class:`~.run_cache.RunResult`, zips, pruning);
- :mod:`.jobs` — :func:`~.jobs.stream_run` runs a request in a worker thread and yields
  progress, streamed audio and the result; stop events and the progress bar's stage weights;
- :mod:`.presentation` — the metrics table, its notes, provenance and the model status text;
- :mod:`.examples` — the example prompts and clips;
- :mod:`.ground_truth` — the "Ground truth" tab: one clean clip degraded, restored and measured
  against the original (:func:`restoration.groundtruth.run_clip`).

Nothing here imports Gradio: the app layer's logic is testable without a browser.
"""
