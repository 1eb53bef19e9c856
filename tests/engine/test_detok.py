"""Incremental UTF-8 decoding and stop-string holdback (pure)."""

from __future__ import annotations

from app.engine.detok import TextStream


def feed(stream: TextStream, pieces: list[bytes]) -> list[str]:
    return [stream.push(p) for p in pieces]


def test_plain_text_passes_through() -> None:
    s = TextStream()
    assert feed(s, [b"Hello", b", ", b"world"]) == ["Hello", ", ", "world"]
    assert s.flush() == ""


def test_multibyte_char_split_across_tokens_is_never_halved() -> None:
    smile = "😀".encode()  # 4 bytes
    s = TextStream()
    out = feed(s, [b"a" + smile[:1], smile[1:3], smile[3:] + b"b"])
    assert out == ["a", "", "😀b"]


def test_chinese_split_bytes() -> None:
    data = "中文".encode()  # 2 x 3 bytes
    s = TextStream()
    out = feed(s, [data[i : i + 1] for i in range(len(data))])
    assert "".join(out) == "中文"
    assert all(o in ("", "中", "文") for o in out)


def test_incomplete_char_at_end_is_dropped() -> None:
    s = TextStream()
    assert s.push(b"ok\xe4\xb8") == "ok"
    assert s.flush() == ""


def test_invalid_bytes_are_replaced_not_raised() -> None:
    s = TextStream()
    assert s.push(b"\xff") == "\ufffd"


def test_stop_string_inside_one_piece() -> None:
    s = TextStream(["END"])
    assert s.push(b"abcENDdef") == "abc"
    assert s.stopped
    assert s.push(b"more") == ""
    assert s.flush() == ""


def test_stop_string_spanning_deltas_is_held_then_dropped() -> None:
    s = TextStream(["\nUser:"])
    out = feed(s, [b"Hi", b" there\n", b"Us", b"er", b": next"])
    assert out == ["Hi", " there", "", "", ""]
    assert s.stopped


def test_holdback_released_when_match_becomes_impossible() -> None:
    s = TextStream(["STOP"])
    assert s.push(b"abcST") == "abc"
    assert s.held == "ST"
    assert s.push(b"X") == "STX"
    assert not s.stopped


def test_held_text_is_flushed_at_end() -> None:
    s = TextStream(["STOP"])
    assert s.push(b"abcSTO") == "abc"
    assert s.flush() == "STO"
    assert not s.stopped


def test_earliest_of_several_stops_wins() -> None:
    s = TextStream(["world", "lo w"])
    assert s.push(b"hello world") == "hel"


def test_stop_split_inside_multibyte_char() -> None:
    stop = "终"
    data = ("好" + stop).encode()
    s = TextStream([stop])
    out = feed(s, [data[:4], data[4:5], data[5:]])
    assert "".join(out) == "好"
    assert s.stopped


def test_empty_stop_strings_are_ignored() -> None:
    s = TextStream(["", ""])
    assert s.push(b"abc") == "abc"
    assert not s.stopped
