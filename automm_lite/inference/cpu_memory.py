"""Keep the CPU memory that torch frees inside the process, so that each batch's activations reuse warm pages.

With glibc's default settings, a freed block of more than 128 KB (up to 32 MB once the threshold adapts) goes back
to the operating system, and so does free memory above 128 KB at the top of the heap. A float32 inference batch
of 2,048 tokens allocates and frees a dozen such blocks per layer (a MiniLM feed-forward output is 12.6 MB): every
batch then page-faults them in again and the kernel zeroes them (docs/benchmarks/speed.md has what that costs).
jemalloc or tcmalloc (``LD_PRELOAD``) also fix it; glibc's ``mallopt`` does it from inside the process.
"""
from __future__ import annotations

import ctypes
import logging
import platform
import sys

logger = logging.getLogger(__name__)

# From glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to 32 MB (glibc's documented limit on 64-bit systems) come from the heap, not from fresh mappings...
MMAP_THRESHOLD = 32 * 2**20
# ... and up to 1 GB of freed memory at the top of the heap stays in the process.
TRIM_THRESHOLD = 2**30

_state = {"kept": None}


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep freed memory for reuse (process-wide, once; it cannot be undone).

    The process's resident memory then stays near its peak instead of shrinking between batches.

    Returns
    -------
    bool
        Whether the allocator settings are in place: False where the C library is not glibc (macOS, Windows,
        musl) or refused them, which changes nothing but speed.
    """
    if _state["kept"] is None:
        _state["kept"] = _set_glibc_thresholds()
    return _state["kept"]


def _set_glibc_thresholds() -> bool:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Both: setting either one also stops glibc from adapting the mmap threshold by itself.
    kept = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    logger.debug("glibc keeps freed memory for reuse: %s", kept)
    return kept
