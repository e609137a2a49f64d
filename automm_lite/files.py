"""Writing one file so that a reader sees the old version or the complete new one, never half of it.

This module imports nothing of the package, so that every module may use it (``io.py`` may not: it reaches the
models, the classical models and the fit's resume state, which write files themselves). A folder that must change
as a whole is swapped by ``io.save_atomically`` instead.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target):
    """A temporary path beside ``target`` to write to; it is renamed over ``target`` when the block ends without
    an error, and removed when it raises.

    The temporary file has a hidden, unique name in the target's folder (the rename is atomic only within one
    file system), so that two writers of the same target never write into one file: the last rename wins, and
    each version is whole. It keeps the target's suffix, for writers that choose the format by it (PIL) or add
    it (``numpy.save``), and gets the permissions a newly created file gets. The data is not synced to disk: a
    killed process leaves the previous version whole, a power cut may not.

    Parameters
    ----------
    target : str or Path
        The file to write. Its folder must exist.

    Yields
    ------
    Path
        An empty file to write the new version to (writers may also replace it).

    Examples
    --------
    >>> with atomic_path(folder / "settings.json") as temporary:  # doctest: +SKIP
    ...     temporary.write_text(text)
    """
    target = Path(target)
    descriptor, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".partial{target.suffix}",
                                        dir=target.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        temporary.chmod(0o666 & ~_umask())  # mkstemp's file is private; a file written in place would not be
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's file-creation mask, read without changing it where the system shows it (changing it,
    even for a moment, would affect files other threads create meanwhile)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
