"""Files by content: every stored image lives at ``blobs/ab/abcdef…`` under its SHA-256.

Writes go to a temporary name in the same folder and are renamed into place, so a blob either
exists whole or not at all; writing the same content twice is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from veil.errors import InvalidParameterError

_HEX64 = re.compile(r"[0-9a-f]{64}")


class BlobStore:
    """Content-addressed files under ``root``.

    Examples
    --------
    >>> import tempfile
    >>> blobs = BlobStore(tempfile.mkdtemp())
    >>> sha, new = blobs.put(b"hello")
    >>> blobs.read(sha), new
    (b'hello', True)
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists)."""
        if not _HEX64.fullmatch(sha256):
            raise InvalidParameterError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store ``data``; returns its SHA-256 and whether it was new."""
        sha = hashlib.sha256(data).hexdigest()
        final = self.path(sha)
        if final.is_file():
            return sha, False
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha, True

    def put_file(self, path: str | os.PathLike) -> str:
        """Store a file's bytes (moving nothing); returns its SHA-256."""
        return self.put(Path(path).read_bytes())[0]

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def remove(self, sha256: str) -> None:
        """Delete a blob (only for one written by a transaction that then failed)."""
        self.path(sha256).unlink(missing_ok=True)
