"""Where the module's standard output and error go: Python's own
``sys.stdout`` and ``sys.stderr``, looked up at each write so that pytest's
capsys, notebooks and redirect_stdout see it."""

from __future__ import annotations

import codecs
import sys
from typing import Literal


class TextSink:
    """Decodes the module's bytes as UTF-8 (a character split across two
    writes is kept until its end arrives) and writes the text to a stream
    of :mod:`sys`."""

    def __init__(self, stream: Literal["stdout", "stderr"]) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, data: bytes) -> None:
        """Write ``data``; raises ``OSError`` (or whatever the stream raises) on failure."""
        text = self._decoder.decode(data)
        target = getattr(sys, self._stream)
        if text and target is not None:
            target.write(text)
