"""Text files that are not UTF-8, refused in one line naming the file, the line and the byte."""

from __future__ import annotations

import codecs

__all__ = ["check_utf8", "not_utf8_message"]


def not_utf8_message(what: str, raw: bytes, err: UnicodeDecodeError, *, lines_before: int = 0) -> str:
    """One line naming ``what`` (a file), the line and the byte that is not UTF-8 (``raw``: the bytes decoded,
    which start after ``lines_before`` lines of the file)."""
    line = lines_before + raw.count(b"\n", 0, err.start) + 1
    byte = f"byte 0x{raw[err.start]:02x}" if err.start < len(raw) else "a character cut off at the end"
    return f"{what} line {line}: not UTF-8 text ({byte}); save it as UTF-8"


def check_utf8(path: str) -> None:
    """ValueError naming the file and line of the first byte that is not UTF-8 (datasets reads such a file
    and fails later, naming neither). One streaming pass, decoded in C."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with open(path, "rb") as handle:
        while True:
            block = handle.read(1 << 20)
            held = decoder.getstate()[0]  # the start of a character split across blocks (never a newline)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                raise ValueError(not_utf8_message(f"data file {path!r}", held + block, err,
                                                  lines_before=lines_before)) from None
            if not block:
                return
            lines_before += block.count(b"\n")
