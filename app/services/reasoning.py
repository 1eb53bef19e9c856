"""`<think>...</think>` at the start of a reply -> reasoning, apart from the content (pure)."""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"

Part = tuple[str, str]  # ("reasoning" | "content", text)


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning or None, content) of a whole reply."""
    head = text.lstrip()
    if not head.startswith(OPEN):
        return None, text
    body = head[len(OPEN):]
    at = body.find(CLOSE)
    if at < 0:  # cut before the end of the thinking
        return body.strip(), ""
    return body[:at].strip(), body[at + len(CLOSE):].lstrip()


def _tail_prefix(text: str, marker: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `marker`."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-k:]):
            return k
    return 0


class ThinkStream:
    """Streaming form of split_reasoning: push text, get reasoning and content parts.

    Whatever the chunking, the parts joined equal `split_reasoning` of the whole text:
    whitespace at either end of the reasoning is held back until text follows it.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._mode = "start"  # -> "think" -> "after" -> "content", or -> "content"
        self._thought = False  # some reasoning was sent (leading whitespace is gone)

    def push(self, text: str) -> list[Part]:
        self._buf += text
        out: list[Part] = []
        if self._mode == "start":
            head = self._buf.lstrip()
            if not head or (OPEN.startswith(head) and head != OPEN):
                return out
            if not head.startswith(OPEN):
                self._mode = "content"
            else:
                self._mode, self._buf = "think", head[len(OPEN):]
        if self._mode == "think":
            if not self._thought:
                self._buf = self._buf.lstrip()
            at = self._buf.find(CLOSE)
            if at >= 0:
                thought, rest = self._buf[:at].rstrip(), self._buf[at + len(CLOSE):]
                if thought:
                    out.append(("reasoning", thought))
                self._mode, self._buf = "after", rest
            else:
                marker = _tail_prefix(self._buf, CLOSE)
                head = self._buf[:len(self._buf) - marker]
                ready = head.rstrip()
                self._buf = self._buf[len(ready):]
                if ready:
                    self._thought = True
                    out.append(("reasoning", ready))
                return out
        if self._mode == "after":  # whitespace after </think> is not content
            self._buf = self._buf.lstrip()
            if self._buf:
                self._mode = "content"
        if self._mode == "content" and self._buf:
            out.append(("content", self._buf))
            self._buf = ""
        return out

    def flush(self) -> list[Part]:
        text, self._buf = self._buf, ""
        if self._mode == "think":
            text = text.strip() if not self._thought else text.rstrip()
            return [("reasoning", text)] if text else []
        if not text or self._mode == "after":
            return []
        return [("content", text)]
