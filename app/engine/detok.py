"""Incremental detokenization: whole UTF-8 characters only, stop strings held back."""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class TextStream:
    """Turns the byte pieces of one choice's tokens into text that is safe to emit.

    Bytes of a character split across tokens are kept until the character is complete
    (invalid bytes become U+FFFD; an incomplete character at the end is dropped). Text
    that could be the start of a stop string is held back until it can no longer match;
    a matched stop string and everything after it is never emitted (`stopped` turns True).
    """

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stop if s)
        self._max_hold = max((len(s) for s in self._stops), default=1) - 1
        self._held = ""
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the text

    @property
    def held(self) -> str:
        """Text decoded but not emitted yet (a possible stop-string prefix)."""
        return self._held

    def push(self, piece: bytes) -> str:
        """Feed the bytes of one token; return the text that may be emitted now."""
        if self.stopped:
            return ""
        text = self._decoder.decode(piece)
        if not self._stops:
            return text
        if not text:
            return ""
        buf = self._held + text
        cut = self._find_stop(buf)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return buf[:cut]
        hold = self._holdback(buf)
        self._held = buf[len(buf) - hold :] if hold else ""
        return buf[: len(buf) - hold]

    def flush(self) -> str:
        """Generation ended: return the held-back text.

        An incomplete character at the very end (generation cut inside it) is dropped.
        """
        if self.stopped:
            return ""
        buf = self._held
        self._held = ""
        self._decoder.reset()
        cut = self._find_stop(buf)
        if cut >= 0:
            self.stopped = True
            return buf[:cut]
        return buf

    def _find_stop(self, buf: str) -> int:
        best = -1
        for stop in self._stops:
            i = buf.find(stop)
            if i >= 0 and (best < 0 or i < best):
                best, self.matched = i, stop
        return best

    def _holdback(self, buf: str) -> int:
        """Length of the longest suffix of `buf` that is a proper prefix of a stop string."""
        for k in range(min(self._max_hold, len(buf)), 0, -1):
            suffix = buf[-k:]
            if any(stop.startswith(suffix) for stop in self._stops):
                return k
        return 0
