"""Give back the resident pages of LLVM's code once the kernels are loaded (Linux).

``import numba`` maps ``libllvmlite.so`` (≈ 180 MB) and runs LLVM's static initialisers, which
are spread over the whole library; the kernel maps the file pages around each page fault
(fault-around), so about 100 MB of LLVM's code and read-only data become resident and count in
the process's RSS although driftd runs none of it again once its kernels are loaded from
numba's cache. :func:`release_llvm_pages` tells the kernel the process does not need those pages
(``madvise(MADV_DONTNEED)``) — only on mappings of that library that are not writable and
hold no copy-on-write page (``Anonymous: 0 kB`` in ``/proc/self/smaps``), which are plain views
of the file: dropping them changes no byte the process can see, and any page LLVM executes
later (a kernel compiled at run time) faults back in from the page cache. It lowers RSS, not
the machine's memory use: the pages stay in the page cache, shared and reclaimable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

MADV_DONTNEED = 4
LIBRARY = "libllvmlite"


def _mappings(path: str = "/proc/self/smaps") -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    cur: dict[str, object] | None = None
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            if not parts[0].endswith(":") and "-" in parts[0]:
                cur = {
                    "range": parts[0],
                    "perms": parts[1] if len(parts) > 1 else "",
                    "path": parts[5] if len(parts) > 5 else "",
                }
                out.append(cur)
            elif cur is not None and parts[0] in ("Rss:", "Anonymous:"):
                cur[parts[0][:-1]] = int(parts[1])
    return out


def release_llvm_pages() -> int:
    """Release the resident pages of LLVM's read-only mappings; returns the kB released
    (0 where ``/proc/self/smaps`` or ``madvise`` is not available)."""
    try:
        maps = _mappings()
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return 0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for m in maps:
        perms = str(m["perms"])
        if LIBRARY not in str(m["path"]) or "w" in perms or not perms.endswith("p"):
            continue
        if m.get("Anonymous", 1) != 0:  # a copy-on-write page (relocations): not the file's
            continue
        lo, hi = (int(x, 16) for x in str(m["range"]).split("-"))
        if madvise(lo, hi - lo, MADV_DONTNEED) == 0:
            released += int(m.get("Rss", 0))  # type: ignore[call-overload]
    if released:
        log.debug("released %d kB of resident LLVM pages", released)
    return released
