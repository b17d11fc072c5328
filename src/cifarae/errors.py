"""User-facing errors: one line, non-zero exit, no traceback."""

from __future__ import annotations

import functools
import sys

# Exit code of a run stopped by SIGTERM/SIGUSR1 after saving `last` (EX_TEMPFAIL): "requeue me".
# jobs/signals.sh holds the same number for the shell launchers.
REQUEUE_EXIT_CODE = 75


class UserError(Exception):
    """Bad input from the user (path, config, checkpoint, file). Printed as one line."""

    exit_code = 2


class TrainingDiverged(UserError):
    exit_code = 3


def cli_main(fn):
    """Wrap an entry point so a UserError becomes one line on stderr and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
