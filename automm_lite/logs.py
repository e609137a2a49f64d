"""The package's console output, by verbosity, and the log file that keeps everything a fit said.

The package logs to the logger ``automm_lite`` (and its children), which propagates to the root logger as a
library's logger should, and holds a ``NullHandler`` (so that, before any console is set up, Python does not print
the package's warnings on its own). Where the records go:

- An application that has configured logging (a handler on the root logger, e.g. ``logging.basicConfig()``, or
  pytest's capture) receives them through its own handlers, which decide what is shown: INFO and up, and DEBUG too
  at verbosity 3 and up. The package then prints nothing itself, so that nothing is shown twice.
- Otherwise (a script or a notebook that configured nothing), the package prints them to stderr itself, by
  verbosity: 0 errors only, 1 warnings, 2 progress and results, 3 and up debugging detail.
- A fit's log file (``add_log_file``) keeps INFO and up of the package and of Lightning, at any verbosity.
"""
from __future__ import annotations

import logging
import warnings

PACKAGE = "automm_lite"
LIGHTNING = "lightning.pytorch"
LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}

logging.getLogger(PACKAGE).addHandler(logging.NullHandler())


def _application_logs_nothing(record: logging.LogRecord) -> bool:
    """The package's console prints a record only where the root logger has no handler (one would print it too).
    Asked per record, so that an application may configure logging before or after the package's first call."""
    return not logging.getLogger().handlers


def set_console_verbosity(verbosity: int):
    """Set what the package prints on the console (where the application has not configured logging).

    Parameters
    ----------
    verbosity : int
        0 errors only, 1 warnings, 2 progress and results, 3 and up debugging detail (Lightning's messages too).
    """
    level = LEVELS.get(verbosity, logging.DEBUG)
    logger_level = min(level, logging.INFO)  # INFO for the fit log at any verbosity; DEBUG only when it is shown
    package_logger = logging.getLogger(PACKAGE)
    console = [h for h in package_logger.handlers if getattr(h, "_automm_console", False)]
    if console and console[0].level == level and package_logger.level == logger_level:
        return  # already set: setLevel clears logging's caches, which costs a one-row predict milliseconds
    package_logger.setLevel(logger_level)
    if not console:
        console = [logging.StreamHandler()]
        console[0].setFormatter(logging.Formatter("%(message)s"))
        console[0].addFilter(_application_logs_nothing)
        console[0]._automm_console = True
        package_logger.addHandler(console[0])
    console[0].setLevel(level)
    logging.getLogger(LIGHTNING).setLevel(logging.INFO if verbosity >= 3 else logging.WARNING)


def add_log_file(file) -> logging.Handler:
    """Copy the package's and Lightning's messages (INFO and up) into ``file``."""
    handler = logging.FileHandler(file)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in (PACKAGE, LIGHTNING):
        logging.getLogger(name).addHandler(handler)
    return handler


def remove_log_file(handler: logging.Handler):
    for name in (PACKAGE, LIGHTNING):
        logging.getLogger(name).removeHandler(handler)
    handler.close()


def quiet_libraries(verbosity: int):
    """Keep Lightning's and transformers' chatter out of the user's way below verbosity 3."""
    import transformers

    level = logging.INFO if verbosity >= 3 else logging.WARNING
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(level)
    transformers.logging.set_verbosity(logging.INFO if verbosity >= 4 else logging.ERROR)
    if verbosity < 3:
        transformers.utils.logging.disable_progress_bar()
    if verbosity < 3:
        for pattern in (".*isinstance\\(treespec, LeafSpec\\).*", ".*does not have many workers.*",
                        ".*litlogger.*", ".*in eval mode at the start of training.*"):
            warnings.filterwarnings("ignore", message=pattern)
