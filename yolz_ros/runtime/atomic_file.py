"""Atomic file writes shared by the object library and the engine cache.

The bytes go to a temporary file in the destination folder, are fsync'ed, then `os.replace`d over
the destination: readers see the old file or the new one, never a half-written one. Temporary
names start with TMP_PREFIX so folder scans can skip them.
"""
import os
import tempfile
from pathlib import Path

TMP_PREFIX = ".tmp-"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
