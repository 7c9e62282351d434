"""How every `ls-llm` command reports a failure: bad input (ValueError, incl. a recipe error), a file it cannot
read or write (OSError: missing, full disk, permissions) or a missing optional package (ImportError) exits 2
with one line `ls-llm COMMAND: error: ...` naming the file, field or value. The traceback is printed only with
LS_LLM_DEBUG=1; any other exception is a bug and keeps its traceback."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

USER_ERRORS = (ValueError, OSError, ImportError)
DEBUG_ENV = "LS_LLM_DEBUG"


def one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        where = f": {err.filename!r}" if err.filename else ""
        text = f"{err.strerror}{where}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _is_io_error(err: Exception) -> bool:
    # safetensors' writer reports a full disk as SafetensorError("... I/O error: No space left on device").
    return type(err).__name__ == "SafetensorError" and "I/O error" in str(err)


def report(command: str, err: BaseException) -> int:
    if os.environ.get(DEBUG_ENV) == "1":
        traceback.print_exception(err)
    _line(f"ls-llm {command}: error: {one_line(err)}")
    return 2


def _line(text: str) -> None:
    """One line to stderr in one write: the ranks of a launch share the stream, and a line written in two parts (print
    writes the text, then the newline) can have another rank's line between them."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def guarded(command: str, fn: Callable[[], int | None]) -> int:
    """Run ``fn`` and turn a user error into exit status 2 with one line (see the module docstring)."""
    try:
        return int(fn() or 0)
    except USER_ERRORS as err:
        return report(command, err)
    except Exception as err:
        if _is_io_error(err):
            return report(command, err)
        raise
    except KeyboardInterrupt as err:  # Ctrl-C, or a stop signal after its checkpoint (trainers/guard.Preempted)
        status = getattr(err, "exit_status", None)
        message = str(err) if status is not None else "interrupted"
        if message:
            _line(f"ls-llm {command}: {message}")
        return 130 if status is None else status
