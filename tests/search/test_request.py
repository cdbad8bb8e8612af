"""The pure parts of search: what is indexed, batch tokens, highlights, groupings."""

from __future__ import annotations

import pytest

from homeserver.errors import InvalidParam
from homeserver.search.request import (
    Grouped,
    groups_of,
    highlights,
    indexed_text,
    parse_rank_batch,
    parse_recent_batch,
    parse_search_request,
    rank_token,
    recent_token,
    words_of,
)


def test_indexed_text_takes_the_key_of_the_type() -> None:
    assert indexed_text("m.room.message", {"body": "hi"}) == ("content.body", "hi")
    assert indexed_text("m.room.name", {"name": "Lobby"}) == ("content.name", "Lobby")
    assert indexed_text("m.room.topic", {"topic": "t"}) == ("content.topic", "t")
    assert indexed_text("m.room.message", {"body": 7}) is None
    assert indexed_text("m.room.message", {"body": "   "}) is None
    assert indexed_text("m.room.encrypted", {"body": "x"}) is None


def test_words_are_distinct_lowercase_letters_and_digits() -> None:
    assert words_of("Hello, hello WORLD_2 ça-va?") == ["hello", "world", "2", "ça", "va"]
    assert words_of('"*) OR NEAR(') == ["or", "near"]


def test_batch_tokens_round_trip_and_refuse_the_other_order() -> None:
    assert parse_rank_batch(rank_token(20)) == 20
    assert parse_recent_batch(recent_token((1_700_000_000_000, 1234))) == (1_700_000_000_000, 1234)
    # backfilled history has negative stream positions
    assert parse_recent_batch(recent_token((5, -42))) == (5, -42)
    assert parse_rank_batch(None) is None and parse_recent_batch(None) is None
    for token in ("s5_1", "r-1", "r", "r٣", "r" + "9" * 19):
        with pytest.raises(InvalidParam):
            parse_rank_batch(token)
    for token in ("r5", "s5", "s-5_1", "s5_", "s_5", "s5_x", "s5_" + "9" * 19):
        with pytest.raises(InvalidParam):
            parse_recent_batch(token)


def test_highlights_are_the_matched_words_of_the_results() -> None:
    assert highlights(["tom"], ["Tomatoes and tomato", "atom bomb"]) == ["Tomatoes", "tomato"]
    assert highlights(["x"], []) == []


def test_groups_keep_order_of_their_best_result() -> None:
    results = [
        Grouped("$1", "!a", "@x", 3.0),
        Grouped("$2", "!b", "@x", 2.0),
        Grouped("$3", "!a", "@y", 1.0),
    ]
    groups = groups_of(["room_id", "sender"], results, "r3")
    assert groups["room_id"]["!a"] == {"results": ["$1", "$3"], "order": 3.0, "next_batch": "r3"}
    assert groups["sender"]["@x"]["results"] == ["$1", "$2"]
    assert groups_of(["room_id"], results, None)["room_id"]["!b"] == {
        "results": ["$2"],
        "order": 2.0,
    }


def test_request_defaults() -> None:
    request = parse_search_request({"search_categories": {"room_events": {"search_term": "a b"}}})
    assert request is not None
    assert request.words == ("a", "b")
    assert request.order_by == "rank" and request.limit == 10
    assert request.keys == ("content.body", "content.name", "content.topic")
    assert parse_search_request({"search_categories": {"other": {}}}) is None
