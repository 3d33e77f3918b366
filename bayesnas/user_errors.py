"""The errors that mean bad input — a wrong option, missing data, an occupied run directory —
rather than a bug: entry points (``bayesnas``, the experiment scripts) report them in one line
that states the rule and the value, without a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["USER_ERRORS", "message", "report_user_errors"]

#: raised by config checks (ValueError), unknown names (KeyError), missing datasets or runs
#: (FileNotFoundError, including DatasetUnavailableError), occupied run directories
#: (FileExistsError) and optional dependencies that are not installed (ImportError).
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError)


def message(err: BaseException) -> str:
    """The one-line text of a user error (a KeyError's ``str`` would add quotes)."""
    return str(err.args[0] if isinstance(err, KeyError) and err.args else err)


def report_user_errors(main: Callable[[], int], *, prog: str | None = None) -> int:
    """``main()``, or exit status 2 with ``prog: error: …`` on standard error for a user error
    (``prog``: default the script's file name)."""
    try:
        return main()
    except USER_ERRORS as err:
        print(f"{prog or Path(sys.argv[0]).name}: error: {message(err)}", file=sys.stderr)
        return 2
