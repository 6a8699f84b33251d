"""Whether a file changed since it was last read, without reading it.

The sources file and the token revocation list are reread by running
processes when an operator replaces them; both compare this signature
(modification time, size, inode) every interval, so a rewrite in place and a
rename over the file are both noticed, and a missing file is a signature too.
"""

from __future__ import annotations

import os
from pathlib import Path

Signature = tuple[int, int, int] | None
"""(mtime in ns, size, inode) of a file, or None when it cannot be stat'ed."""


def file_signature(path: Path) -> Signature:
    """The file's current signature; None when it is missing or unreadable."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
