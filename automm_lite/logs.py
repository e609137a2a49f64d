"""The package's console output, by verbosity, and the log file that keeps everything a fit said.

The package logs to the logger ``automm_lite`` (and its children), which holds a ``NullHandler`` (so that, before any
console is set up, Python does not print the package's warnings on its own). ``verbosity`` decides what leaves the
package: 0 errors only, 1 warnings, 2 progress and results, 3 and up debugging detail (Lightning's messages too).
Those records go:

- to the application's handlers, where it has configured logging (a handler on the root logger, e.g.
  ``logging.basicConfig()``, or pytest's capture): each record once, and the package prints nothing itself;
- otherwise (a script or a notebook that configured nothing) to stderr, printed by the package.

The package does not let its records propagate on their own: Python would hand every INFO record to the root
logger's handlers whatever the verbosity (a logger's level filters only at the logger the record starts from). An
application that wants every record, whatever the verbosity, adds its handler to the ``automm_lite`` logger. A
fit's log file (``add_log_file``) keeps INFO and up of the package at any verbosity, and Lightning's messages at
the level Lightning logs at (WARNING and up below verbosity 3).
"""
from __future__ import annotations

import logging
import warnings

PACKAGE = "automm_lite"
LIGHTNING = "lightning.pytorch"
LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}

logging.getLogger(PACKAGE).addHandler(logging.NullHandler())


class _Console(logging.Handler):
    """The records that ``verbosity`` lets out (this handler's level): to the root logger's handlers where the
    application configured some, else to stderr. Asked per record, so that an application may configure logging
    before or after the package's first call."""

    def __init__(self):
        super().__init__()
        self.stderr = logging.StreamHandler()
        self.stderr.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        application = [h for h in logging.getLogger().handlers if h not in logging.getLogger(PACKAGE).handlers]
        if not application:
            self.stderr.handle(record)
        for handler in application:  # as propagation would, but only what the verbosity lets out
            if record.levelno >= handler.level:
                handler.handle(record)


def set_console_verbosity(verbosity: int):
    """Set what the package lets out: to the application's logging where it configured some, else to stderr.

    Parameters
    ----------
    verbosity : int
        0 errors only, 1 warnings, 2 progress and results, 3 and up debugging detail (Lightning's messages too).
    """
    level = LEVELS.get(verbosity, logging.DEBUG)
    logger_level = min(level, logging.INFO)  # INFO for the fit log at any verbosity; DEBUG only when it is shown
    package_logger = logging.getLogger(PACKAGE)
    # _Console passes on what the verbosity lets out (see the module's docstring); set every call, as other code
    # (a logging configuration, a library) may have turned propagation back on since
    package_logger.propagate = False
    console = [h for h in package_logger.handlers if isinstance(h, _Console)]
    if console and console[0].level == level and package_logger.level == logger_level:
        return  # already set: setLevel clears logging's caches, which costs a one-row predict milliseconds
    package_logger.setLevel(logger_level)
    if not console:
        console = [_Console()]
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
