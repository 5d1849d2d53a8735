"""Whether a version counts as heard, from play events by the server's clock: known answers."""

from __future__ import annotations

import pytest

from restoration.listening.heard import HEARD_FRACTION, PlayEvent, covered_seconds, heard_letters

D = 10.0  # every stimulus lasts 10 s here


def ev(letter, kind, position_s, at_s, to_s=None):
    return PlayEvent(letter, kind, position_s, at_s, to_s)


def test_playing_to_the_end_covers_the_whole_clip():
    events = [ev("A", "play", 0.0, 100.0), ev("A", "stop", 10.0, 110.0)]
    assert covered_seconds(events, duration_s=D) == {"A": pytest.approx(10.0)}
    assert heard_letters(events, letters="AB", duration_s=D) == {"A": True, "B": False}


def test_a_seek_to_the_end_covers_only_the_time_really_played():
    # play at 0, jump to 9.9 s half a second later, the end arrives 0.1 s after that
    events = [ev("A", "play", 0.0, 0.0), ev("A", "seek", 0.5, 0.5, to_s=9.9), ev("A", "stop", 10.0, 0.6)]
    assert covered_seconds(events, duration_s=D)["A"] == pytest.approx(0.6)
    assert heard_letters(events, letters="A", duration_s=D) == {"A": False}


def test_an_unreported_jump_is_bounded_by_the_server_clock():
    # the page claims it stopped at the end 1 s after starting: only 1 s counts
    events = [ev("A", "play", 0.0, 50.0), ev("A", "stop", 10.0, 51.0)]
    assert covered_seconds(events, duration_s=D)["A"] == pytest.approx(1.0)
    # and starting near the end covers only what is left
    events = [ev("B", "play", 9.5, 0.0), ev("B", "stop", 10.0, 30.0)]
    assert covered_seconds(events, duration_s=D)["B"] == pytest.approx(0.5)


def test_replaying_one_part_does_not_add_up_to_the_whole():
    events = []
    for k in range(5):  # the first 3 s, five times: 15 s of listening, 3 s of the clip
        events += [ev("A", "play", 0.0, 10.0 * k), ev("A", "stop", 3.0, 10.0 * k + 3.0)]
    assert covered_seconds(events, duration_s=D)["A"] == pytest.approx(3.0)


def test_pieces_in_any_order_add_up_and_another_play_ends_the_current_one():
    events = [ev("A", "play", 5.0, 0.0), ev("A", "stop", 10.0, 5.0),  # second half
              ev("A", "play", 0.0, 20.0), ev("B", "play", 0.0, 24.0),  # first 4 s, then B starts
              ev("B", "stop", 10.0, 34.0)]
    got = covered_seconds(events, duration_s=D)
    assert got == {"A": pytest.approx(9.0), "B": pytest.approx(10.0)}
    assert heard_letters(events, letters="AB", duration_s=D) == {"A": True, "B": True}


def test_an_interval_still_open_does_not_count_and_stray_events_are_ignored():
    events = [ev("A", "stop", 10.0, 1.0), ev("A", "seek", 2.0, 2.0, to_s=3.0), ev("A", "play", 0.0, 5.0)]
    assert covered_seconds(events, duration_s=D) == {}


def test_the_threshold_is_most_of_the_clip():
    need = HEARD_FRACTION * D
    assert 0.5 < HEARD_FRACTION < 1.0
    just = [ev("A", "play", 0.0, 0.0), ev("A", "stop", need, need)]
    short = [ev("A", "play", 0.0, 0.0), ev("A", "stop", need - 0.05, need - 0.05)]
    assert heard_letters(just, letters="A", duration_s=D) == {"A": True}
    assert heard_letters(short, letters="A", duration_s=D) == {"A": False}
