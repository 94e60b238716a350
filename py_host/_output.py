"""Where the module's standard output and error go: Python's own
``sys.stdout`` and ``sys.stderr``, looked up at each write so that pytest's
capsys, notebooks and redirect_stdout see it."""

from __future__ import annotations

import codecs
import sys
from typing import Literal

_RECENT_CHARS = 4096


class TextSink:
    """Decodes the module's bytes as UTF-8 (a character split across two
    writes is kept until its end arrives) and writes the text to a stream
    of :mod:`sys`. Keeps the end of what the current call wrote, for a trap
    report."""

    def __init__(self, stream: Literal["stdout", "stderr"]) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.recent = ""
        """The last few thousand characters written since :meth:`new_call`."""

    def new_call(self) -> None:
        self.recent = ""

    def write(self, data: bytes) -> None:
        """Write ``data``; raises ``OSError`` (or whatever the stream raises) on failure."""
        text = self.remember(data)
        target = getattr(sys, self._stream)
        if text and target is not None:
            target.write(text)

    def remember(self, data: bytes) -> str:
        """Decode ``data`` and keep it among the call's recent text, unwritten."""
        text = self._decoder.decode(data)
        self.recent = (self.recent + text)[-_RECENT_CHARS:]
        return text
