"""Building a listening test: stimuli unified, loudness-matched, blind; the CLI and the run pool."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from listening_fixtures import condition_of_alias, listen_through, make_batch, make_clip_folder, new_participant_key
from restoration.audio import integrated_lufs, peak_dbfs, read_audio, write_wav
from restoration.cli import main as cli_main
from restoration.errors import BadInputError
from restoration.listening import build, db, design, export, store
from restoration.listening.stimuli import (ClipSource, StimulusSettings, find_clip_folders, select_clips,
                                           sha256_file)
from restoration.versions import CONDITIONS

UUID_WAV = re.compile(r"^[0-9a-f]{32}\.wav$")


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTORATION_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _stimuli(test_id):
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(
            "SELECT s.*, t.is_training FROM stimuli s JOIN trials t ON t.id = s.trial_id WHERE t.test_id = ?",
            (test_id,))]


def test_stimuli_are_unified_loudness_matched_and_blind(data):
    make_batch(data / "batch", per_genre=2)
    # One clip whose Demucs output is stereo at another level: still one layout in the test.
    make_clip_folder(data / "batch" / "clips" / "rock" / "09-x" / "seed9", seed=9, genre="rock", stereo_demucs=True)
    info = build.create_test("t", from_dir=data / "batch", n_clips=4)
    assert info["trials"] == 4 and info["practice"] and info["target_lufs"] == -23.0
    rows = _stimuli(info["id"])
    assert Counter(r["condition"] for r in rows) == {**{c: 5 for c in CONDITIONS}, "calibration": 1}
    folder = db.stimuli_root() / info["id"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(r["file_name"] for r in rows)
    by_trial = {}
    for r in rows:
        path = folder / r["file_name"]
        assert UUID_WAV.match(r["file_name"]), "served files carry random names only"
        assert info["id"] not in r["file_name"]
        meta = sf.info(str(path))
        assert (meta.subtype, meta.channels, meta.samplerate) == ("PCM_16", 1, 16000)
        audio, sr = sf.read(str(path), dtype="float64", always_2d=True)
        lufs = integrated_lufs(audio.T, sr)
        assert abs(lufs - (-23.0)) <= 0.1 and abs(r["lufs_after"] - lufs) < 1e-9
        assert peak_dbfs(audio.T) <= -1.0 + 1e-6 and r["peak_dbfs"] == pytest.approx(peak_dbfs(audio.T))
        assert r["gain_db"] == pytest.approx(-23.0 - r["lufs_before"])
        assert r["sha256"] == sha256_file(path)
        # identical raised-cosine fades: the very first and last samples are (almost) silent
        assert abs(audio[0, 0]) < 1e-3 and abs(audio[-1, 0]) < 1e-3
        by_trial.setdefault(r["trial_id"], {})[r["condition"]] = audio[:, 0]
    for versions in by_trial.values():
        assert len({len(a) for a in versions.values()}) == 1, "every version of a clip has the same length"
        # the anchor is the original low-passed at 3.5 kHz
        spec = {c: np.abs(np.fft.rfft(a)) ** 2 for c, a in versions.items()}
        f = np.fft.rfftfreq(len(versions["original"]), 1 / 16000)
        high = f > 4500
        assert spec["anchor"][high].sum() < 1e-3 * spec["original"][high].sum()


def _wav_header(body: bytes) -> bytes:
    """Every byte of a WAV file before its sample data (RIFF, fmt and any other chunks)."""
    at = 12
    while at + 8 <= len(body):
        size = int.from_bytes(body[at + 4:at + 8], "little")
        if body[at:at + 4] == b"data":
            return body[:at + 8]
        at += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


def test_no_file_property_tells_a_version_apart(data):
    """Size, WAV header and timestamps are the same for every version of a clip; names are random."""
    make_batch(data / "batch", per_genre=2)
    info = build.create_test("same", from_dir=data / "batch", n_clips=4)
    folder = db.stimuli_root() / info["id"]
    rows = _stimuli(info["id"])
    mtimes = {(folder / r["file_name"]).stat().st_mtime for r in rows}
    assert len(mtimes) == 1, "one modification time for every file of a test"
    by_trial = {}
    for r in rows:
        if r["condition"] in CONDITIONS:
            by_trial.setdefault(r["trial_id"], []).append((folder / r["file_name"]).read_bytes())
    assert len(by_trial) == 5
    for bodies in by_trial.values():
        assert len(bodies) == 4
        assert len({len(b) for b in bodies}) == 1, "one size"
        assert len({_wav_header(b) for b in bodies}) == 1, "one header"
        assert len(set(bodies)) == 4, "four different sounds"


def test_a_long_clip_becomes_one_fixed_centred_excerpt(data):
    make_clip_folder(data / "long", seed=1, seconds=15.0, sample_rate=8000)
    info = build.create_test("long", from_dir=data / "long", n_clips=1)
    with db.connect() as conn:
        trials = [dict(r) for r in conn.execute("SELECT * FROM trials WHERE test_id = ?", (info["id"],))]
    assert {t["frames"] for t in trials} == {80000}  # 10 s at 8 kHz
    assert {t["excerpt_start_s"] for t in trials} == {2.5}
    assert "practice trial reuses" in " ".join(info["notes"])


def test_peak_ceiling_lowers_the_target_for_every_stimulus(data):
    make_clip_folder(data / "b" / "calm", seed=1)
    spiky = make_clip_folder(data / "b" / "spiky", seed=2)
    audio, sr = read_audio(spiky / "input.wav")
    audio = audio * 0.05
    audio[:, ::4000] = 0.9  # sparse clicks: a high peak for its loudness
    write_wav(spiky / "input.wav", audio, sr)
    info = build.create_test("spiky", from_dir=data / "b", n_clips=2)
    rows = _stimuli(info["id"])
    assert info["target_lufs"] < -23.0
    assert {r["target_lufs"] for r in rows} == {info["target_lufs"]}
    assert max(r["peak_dbfs"] for r in rows) == pytest.approx(-1.0, abs=0.01)
    assert all(abs(r["lufs_after"] - info["target_lufs"]) <= 0.1 for r in rows)
    assert any("lowered" in n for n in info["notes"])


def test_clip_selection_spreads_genres_and_is_seeded():
    sources = [ClipSource(folder=f"/{g}/{i}", prompt=f"{g}{i}", seed=i, genre=g, model="")
               for g in ("a", "b", "c") for i in range(4)]
    chosen, practice = select_clips(sources, 6, seed=0)
    assert Counter(s.genre for s in chosen) == {"a": 2, "b": 2, "c": 2}
    assert practice not in chosen
    assert select_clips(sources, 6, seed=0) == (chosen, practice)
    assert select_clips(sources, 6, seed=1) != (chosen, practice)


def test_fisher_yates_is_uniform_and_reproducible():
    import random

    from scipy.stats import chisquare

    rng = random.Random(0)
    counts = Counter(tuple(design.fisher_yates("ABCD", rng)) for _ in range(24000))
    assert len(counts) == 24
    assert chisquare(list(counts.values())).pvalue > 0.001
    plan = design.plan_session(42, ["t1", "t2", "t3"], CONDITIONS, training_id="t0")
    assert plan == design.plan_session(42, ["t3", "t1", "t2"], CONDITIONS, training_id="t0")
    assert sorted(plan.order) == ["t1", "t2", "t3"]
    assert all(sorted(m.values()) == sorted(CONDITIONS) and "".join(m) == "ABCD" for m in plan.letters.values())


def test_settings_reject_fades_and_excerpts_outside_the_protocol():
    with pytest.raises(BadInputError):
        StimulusSettings(fade_s=0.05)
    with pytest.raises(BadInputError):
        StimulusSettings(excerpt_s=8.0)


def test_cli_create_list_export_and_errors(data, capsys):
    make_batch(data / "batch", per_genre=1)
    assert cli_main(["listening", "create", "--from", str(data / "batch"), "--clips", "2", "--name", "class"]) == 0
    assert "created test 'class': 2 trials" in capsys.readouterr().out
    assert cli_main(["listening", "create", "--from", str(data / "batch"), "--name", "class"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["listening", "create", "--from", str(data / "nowhere"), "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert cli_main(["listening", "list"]) == 0
    assert "class" in capsys.readouterr().out
    out = data / "export.csv"
    assert cli_main(["listening", "export", "--out", str(out)]) == 0
    assert cli_main(["listening", "export", "--out", str(out), "--test", "class"]) == 0  # replaces the file
    assert "wrote 0 ratings" in capsys.readouterr().out
    assert out.read_text().splitlines() == [",".join(export.EXPORT_COLUMNS + ("excluded_by",))]
    assert cli_main(["listening", "export", "--out", str(out), "--test", "nope"]) == 2
    assert cli_main(["listening", "results"]) == 0


def test_app_runs_join_the_pool_and_make_a_test(data):
    from restoration.listening.pool import add_run_to_pool
    from restoration.paths import data_dir

    runs = data_dir() / "runs"
    for i, genre in enumerate(("jazz", "rock", "folk")):
        make_clip_folder(runs / f"run{i}", seed=i, genre=genre)
    (runs / "broken").mkdir()
    assert "Added" in add_run_to_pool(runs / "run0")
    assert "Already" in add_run_to_pool(runs / "run0")
    assert "(2 clips" in add_run_to_pool(runs / "run1")
    with pytest.raises(BadInputError):
        add_run_to_pool(runs / "broken")
    assert store.pool_folders() == [(runs / "run0").resolve(), (runs / "run1").resolve()]
    info = build.create_test("pool", folders=store.pool_folders(), n_clips=1)
    assert info["trials"] == 1
    # and the CLI finds the saved runs by searching the runs folder
    assert find_clip_folders(runs) == [runs / "run0", runs / "run1", runs / "run2"]
    assert cli_main(["listening", "create", "--from", str(runs), "--name", "runs", "--clips", "3"]) == 0
    assert store.get_test()["name"] == "runs"


def test_database_settings(data):
    with db.connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        conn.execute("PRAGMA foreign_keys = OFF")  # isolate the CHECK constraint
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("INSERT INTO ratings (session_id, trial_id, condition, letter, position, rating, "
                         "stimulus_id, sha256, submitted_at, updated_at) VALUES ('s','t','c','A',1,101,'x','h','','')")


def test_writing_a_trial_again_updates_its_rows_instead_of_adding_any(data):
    make_batch(data / "batch", per_genre=1)
    info = build.create_test("upsert", from_dir=data / "batch", n_clips=2)
    sid = store.create_session(new_participant_key(), info["id"], device="Headphones", experience="None")
    step = store.finish_calibration(sid, listen_through(store.current_step(sid)).nonce)
    letters = [p.letter for p in listen_through(step).players]
    store.submit_ratings(sid, step.nonce, {l: 10 for l in letters})
    with db.connect() as conn:
        rows = conn.execute("SELECT letter, condition, stimulus_id, sha256, trial_id, position FROM ratings").fetchall()
        assert len(rows) == 4
        for value in (20, 30):
            with db.transaction(conn):
                store.upsert_ratings(conn, session_id=sid, trial_id=rows[0]["trial_id"], position=0,
                                     rows=[(r["letter"], r["condition"], r["stimulus_id"], r["sha256"], value)
                                           for r in rows])
        after = conn.execute("SELECT rating, revision FROM ratings").fetchall()
    assert [tuple(r) for r in after] == [(30.0, 3)] * 4


def _take_part(test_id, name, *, scored_trials, anchor=10.0):
    """A listener through the store's own steps: practice, then ``scored_trials`` trials, every version at 10
    except the anchor (``anchor``). Returns the session id."""
    sid = store.create_session(new_participant_key(), test_id, device="Headphones", experience="None")
    step = store.finish_calibration(sid, listen_through(store.current_step(sid)).nonce)
    done = 0
    while step.stage in ("training", "trials") and (step.stage == "training" or done < scored_trials):
        ratings = {p.letter: (anchor if condition_of_alias(p.alias) == "anchor" else 10.0)
                   for p in listen_through(step).players}
        done += step.stage == "trials"
        step = store.submit_ratings(sid, step.nonce, ratings)
    return sid


def test_export_names_the_screening_rule_that_excludes_each_listener(data, capsys):
    import csv

    make_batch(data / "batch", per_genre=1)
    info = build.create_test("screened", from_dir=data / "batch", n_clips=3)
    keeps = _take_part(info["id"], "keeps", scored_trials=3)
    anchor = _take_part(info["id"], "anchor", scored_trials=3, anchor=100.0)  # anchor above 90 in all 3 trials
    quits = _take_part(info["id"], "quits", scored_trials=1)  # 1 of 3 trials: under 80 % complete
    out = data / "export.csv"
    assert cli_main(["listening", "export", "--out", str(out), "--test", "screened"]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    by_session = {}
    for row in rows:
        by_session.setdefault(row["session"], set()).add(row["excluded_by"])
    assert by_session == {keeps: {""}, anchor: {"anchor"}, quits: {"incomplete"}}
    # practice and scored rows alike: 4 versions × (1 + trials) per listener
    assert len(rows) == 4 * (1 + 3) + 4 * (1 + 3) + 4 * (1 + 1)
    assert f"wrote {len(rows)} ratings" in capsys.readouterr().out
