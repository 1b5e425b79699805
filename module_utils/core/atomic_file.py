"""Write a file so readers see either the old or the complete new content."""

from __future__ import annotations

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_text_file(path, mode=0o644, prefix=".tmp-"):
    """Yield a text handle on a temp file beside `path`; rename it over `path` on success.

    On any error (or interruption) the temp file is removed and `path` is left
    as it was, so a half-written report or rejects file is never visible.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
