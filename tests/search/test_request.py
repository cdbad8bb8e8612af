"""The pure parts of search: what is indexed, batch tokens, highlights, groupings."""

from __future__ import annotations

import pytest

from homeserver.errors import InvalidParam
from homeserver.search.request import (
    Grouped,
    batch_token,
    groups_of,
    highlights,
    indexed_text,
    parse_batch,
    parse_search_request,
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
    assert parse_batch("rank", batch_token("rank", 20)) == 20
    assert parse_batch("recent", batch_token("recent", 1234)) == 1234
    assert parse_batch("rank", None) is None
    for order, token in [
        ("rank", "s5"),
        ("recent", "r5"),
        ("rank", "r-1"),
        ("rank", "r"),
        ("recent", "s٣"),
        ("recent", "s" + "9" * 19),
    ]:
        with pytest.raises(InvalidParam):
            parse_batch(order, token)


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
