"""What the page says: error messages without server paths or library internals, a MusicGen known to be
missing, and the progress place. Known inputs, exact expected text."""

from __future__ import annotations

from restoration.app.presentation import musicgen_known_missing, progress_html, user_message


def test_error_messages_name_files_not_server_paths():
    raw = ("cannot read /tmp/gradio/3f2a9c/fake.mp3 as audio (wav, flac, ogg or mp3 expected): Error opening "
           "'/tmp/gradio/3f2a9c/fake.mp3': File does not exist or is not a regular file (possibly a pipe?).")
    assert user_message(raw) == "Cannot read fake.mp3 as audio (wav, flac, ogg or mp3 expected)."
    assert user_message("MusicGen model '/srv/models/musicgen-x' cannot be loaded: no such folder") == (
        "MusicGen model 'musicgen-x' cannot be loaded: no such folder.")
    assert user_message("the prompt is empty: describe the music") == "The prompt is empty: describe the music."
    assert user_message("") == "The request could not be run."


def test_musicgen_known_missing_only_when_no_download_can_help():
    fix = "set MUSICGEN_MODEL to an existing folder written by save_pretrained"
    missing_folder = {"available": False, "source": "missing-folder", "model_id": "/srv/models/mg",
                      "missing": ["the folder itself"], "offline": False, "fix": fix}
    message = musicgen_known_missing(missing_folder)
    assert message.startswith("MusicGen model 'mg' cannot be loaded: the folder itself missing")
    assert "Fix: Set MUSICGEN_MODEL" in message and "/srv" not in message
    offline = {"available": False, "source": "not-cached", "model_id": "facebook/musicgen-small",
               "missing": ["config.json"], "offline": True, "fix": "while online, run `hf download …`"}
    assert "facebook/musicgen-small" in musicgen_known_missing(offline)
    online = {**offline, "offline": False}
    assert musicgen_known_missing(online) is None  # may still download: left to the loader
    assert musicgen_known_missing({"available": True, "source": "hf-cache"}) is None


def test_progress_place_names_the_stage_and_clamps_the_percentage():
    html = progress_html("Restoring with Demucs", 63.4)
    assert "Restoring with Demucs · 63 %" in html and "value='63'" in html and "role='status'" in html
    assert "value='100'" in progress_html("Drawing", 100.7)
    assert "<progress" not in progress_html("Stopped. Nothing was saved.")
