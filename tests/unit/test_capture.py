"""Output within limits: head and tail kept, the rest counted; a session's pipe cut into runs."""

from __future__ import annotations

import pytest

from codeexec_lsp.execution.capture import BoundedCapture, DelimitedStream


def fed(limit: int, *chunks: bytes) -> BoundedCapture:
    capture = BoundedCapture(limit)
    for chunk in chunks:
        capture.feed(chunk)
    return capture


def test_output_within_the_limit_is_kept_whole() -> None:
    capture = fed(10, b"0123", b"", b"456789")
    assert capture.text() == "0123456789" and not capture.truncated and capture.total == 10


def test_past_the_limit_the_head_and_tail_are_kept_and_the_rest_counted() -> None:
    capture = fed(11, b"abcdefgh", b"ijklmnop", b"qrstuvwxyz")
    assert capture.truncated and capture.total == 26
    assert capture.head == b"abcde" and capture.tail == b"uvwxyz"  # odd limits favour the tail
    assert capture.text() == "abcde\n… [15 bytes of output omitted: maxOutputBytes] …\nuvwxyz"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_how_output_is_chunked_does_not_change_what_is_kept(size: int) -> None:
    data = bytes(range(48, 48 + 70))
    whole = fed(20, data)
    pieces = fed(20, *(data[i : i + size] for i in range(0, len(data), size)))
    assert (pieces.head, pieces.tail, pieces.total) == (whole.head, whole.tail, whole.total)
    assert pieces.text() == whole.text()


def test_one_byte_over_is_truncated_and_a_cut_character_is_replaced() -> None:
    capture = fed(4, "ab€".encode())  # 5 bytes: the € is cut
    assert capture.truncated and "[1 bytes of output omitted" in capture.text()
    assert capture.text().startswith("ab\n") and capture.text().endswith("\ufffd")


MARKER = b"<<end-7f3a>>"


def test_a_run_ends_at_its_marker_even_split_across_chunks() -> None:
    stream, capture = DelimitedStream(), BoundedCapture(1000)
    stream.begin(MARKER, capture)
    assert stream.open
    assert stream.feed(b"out <<en") is False
    assert capture.text() == ""  # held back: it could be the start of the marker
    assert stream.feed(b"d-7f3a>> after") is True
    assert capture.text() == "out " and not stream.open
    assert stream.idle.text() == " after"  # what came after the run


def test_text_that_only_looks_like_the_marker_start_belongs_to_the_run() -> None:
    stream, capture = DelimitedStream(), BoundedCapture(1000)
    stream.begin(MARKER, capture)
    stream.feed(b"a <<en")
    stream.feed(b"ough said" + b"x" * 30)
    assert stream.feed(MARKER) is True
    assert capture.text() == "a <<enough said" + "x" * 30


def test_bytes_outside_a_run_go_to_idle_and_a_new_run_starts_clean() -> None:
    stream = DelimitedStream()
    assert stream.feed(b"startup noise") is False
    assert stream.idle.text() == "startup noise"
    capture = BoundedCapture(1000)
    stream.begin(MARKER, capture)
    assert stream.idle.text() == ""
    stream.feed(b"run output" + MARKER)
    assert capture.text() == "run output"


def test_end_of_file_or_abandon_gives_the_pending_bytes_to_the_open_run() -> None:
    for finish in ("close", "abandon"):
        stream, capture = DelimitedStream(), BoundedCapture(1000)
        stream.begin(MARKER, capture)
        stream.feed(b"last words <<end")
        getattr(stream, finish)()
        assert capture.text() == "last words <<end", finish
        assert not stream.open and stream.closed is (finish == "close")
        stream.feed(b"later")
        assert capture.text() == "last words <<end"  # nothing more goes to that run


def test_idle_output_is_bounded() -> None:
    stream = DelimitedStream()
    stream.feed(b"n" * (DelimitedStream.IDLE_LIMIT * 3))
    assert stream.idle.truncated and len(stream.idle.head) + len(stream.idle.tail) == 4096


def test_undecodable_bytes_are_replaced_wherever_they_are() -> None:
    assert fed(100, b"ok \xff\xfe end").text() == "ok \ufffd\ufffd end"
    head_cut = fed(4, "a€".encode() + b"zzzzzz")  # head: a + the first byte of €
    assert head_cut.text().startswith("a\ufffd\n… [") and head_cut.text().endswith("zz")


def test_a_run_that_printed_nothing_ends_at_once() -> None:
    stream, capture = DelimitedStream(), BoundedCapture(1000)
    stream.begin(MARKER, capture)
    assert stream.feed(MARKER) is True
    assert capture.text() == "" and not stream.open


def test_a_marker_cut_at_any_byte_is_still_found_and_never_leaks() -> None:
    for cut in range(1, len(MARKER)):
        stream, capture = DelimitedStream(), BoundedCapture(1000)
        stream.begin(MARKER, capture)
        assert stream.feed(b"x" * 30 + MARKER[:cut]) is False
        assert stream.feed(MARKER[cut:]) is True, cut
        assert capture.text() == "x" * 30, cut


def test_output_so_far_is_all_but_what_could_start_the_marker() -> None:
    stream, capture = DelimitedStream(), BoundedCapture(1000)
    stream.begin(MARKER, capture)
    stream.feed(b"y" * 100)
    # What a progress report or showOutput sees while the run goes on.
    assert capture.total == 100 - (len(MARKER) - 1)


def test_only_the_first_marker_ends_the_run() -> None:
    stream, capture = DelimitedStream(), BoundedCapture(1000)
    stream.begin(MARKER, capture)
    assert stream.feed(b"a" + MARKER + b"b" + MARKER) is True
    assert capture.text() == "a"
    assert stream.idle.text() == "b" + MARKER.decode()
