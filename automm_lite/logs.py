"""The package's console output, by verbosity, and the log file that keeps everything a fit said."""
from __future__ import annotations

import logging
import warnings

PACKAGE = "automm_lite"
LIGHTNING = "lightning.pytorch"
LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}


def set_console_verbosity(verbosity: int):
    """0 errors only, 1 warnings, 2 progress and results, 3+ debugging detail (Lightning's messages too)."""
    level = LEVELS.get(verbosity, logging.DEBUG)
    package_logger = logging.getLogger(PACKAGE)
    console = [h for h in package_logger.handlers if getattr(h, "_automm_console", False)]
    if console and console[0].level == level and package_logger.level == logging.DEBUG:
        return  # already set: setLevel clears logging's caches, which costs a one-row predict milliseconds
    package_logger.setLevel(logging.DEBUG)  # the console shows by verbosity; the fit log keeps everything
    if not console:
        console = [logging.StreamHandler()]
        console[0].setFormatter(logging.Formatter("%(message)s"))
        console[0]._automm_console = True
        package_logger.addHandler(console[0])
    console[0].setLevel(level)
    package_logger.propagate = False
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
