"""What a deployed dashboard lets its visitors reach: data folders, Spark masters, and the upload area.

A visitor types a data path and a Spark master URL in the sidebar; both are checked here against
allow-lists that only the server's configuration sets:

- ``FER_DATA_ROOTS``: folders (separated by ``os.pathsep``) whose files may be read. Default: the
  project's ``data/`` and ``../shared/data``. The shipped sample, the full data set the server was
  given (``FER2013_CSV``) and the upload area are always allowed.
- ``FER_SPARK_MASTERS``: comma-separated master URLs. Default: local masters only (``local``,
  ``local[N]``, ``local[*]``). The server's own default (``FER_SPARK_MASTER``) is always allowed.
- ``FER_UPLOAD_DIR``: where uploaded data sets are stored, under names the server chooses; default
  ``runs/uploads``. Uploads older than ``FER_UPLOAD_MAX_AGE_H`` hours (24) are removed.

Messages meant for visitors go through :func:`public_message`, which hides server paths outside
those folders.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import BinaryIO

from fer_core.artifacts import STAGING_PREFIX, runs_dir
from fer_core.data import PROJECT_ROOT, default_source, full_dataset_path
from fer_core.spark import resolve_master

DATA_ROOTS_ENV = "FER_DATA_ROOTS"
MASTERS_ENV = "FER_SPARK_MASTERS"
UPLOAD_DIR_ENV = "FER_UPLOAD_DIR"
UPLOAD_AGE_ENV = "FER_UPLOAD_MAX_AGE_H"
DEFAULT_DATA_ROOTS = (PROJECT_ROOT / "data", PROJECT_ROOT.parent / "shared" / "data")
LOCAL_MASTER = re.compile(r"local(\[(\d+|\*)(,\s*\d+)?\])?")
UPLOAD_SUFFIXES = (".csv", ".csv.gz")
CHUNK_BYTES = 1 << 20
# An absolute path in a message (or a file: URL's), not the "//host" of another URL.
_PATH = re.compile(r"(?:(?<=file:)|(?<![\w:/.]))(/[^\s'\",;:()\[\]{}<>]+)")


class AccessError(ValueError):
    """A data path or Spark master that this server does not allow; the message is for the visitor."""


def upload_dir() -> Path:
    """Where uploaded data sets are stored: ``$FER_UPLOAD_DIR`` or ``runs/uploads``."""
    return Path(os.environ.get(UPLOAD_DIR_ENV) or runs_dir() / "uploads")


def data_roots() -> list[Path]:
    """The folders visitors may read data from (resolved), the upload area always among them."""
    configured = os.environ.get(DATA_ROOTS_ENV)
    roots = [Path(part) for part in configured.split(os.pathsep) if part.strip()] if configured else []
    return [root.resolve() for root in [*(roots or DEFAULT_DATA_ROOTS), upload_dir()]]


def _always_allowed() -> list[Path]:
    return [path.resolve() for path in (default_source(), full_dataset_path()) if path]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def allowed_data_path(text: str) -> Path:
    """The file or folder a visitor typed, if this server allows it; relative paths are looked up in
    each data root. Raises :class:`AccessError` otherwise, without saying what exists on the server."""
    text = text.strip()
    if not text:
        raise AccessError("type the path of a CSV, CSV.gz or image folder")
    roots = data_roots()
    typed = Path(text).expanduser()
    # resolve() follows symbolic links and "..": a link or a path that leads out of a root is outside.
    candidates = [typed.resolve()] if typed.is_absolute() else [(root / typed).resolve() for root in roots]
    allowed = [path for path in candidates if path in _always_allowed() or _inside(path, roots)]
    if not allowed:
        raise AccessError(
            f"{text!r} is not in a data folder this server allows; use a path under "
            + ", ".join(str(root) for root in roots)
        )
    return next((path for path in allowed if path.exists()), allowed[0])


def allowed_masters() -> list[str]:
    """The Spark master URLs listed in ``$FER_SPARK_MASTERS`` (empty: local masters only)."""
    return [part.strip() for part in os.environ.get(MASTERS_ENV, "").split(",") if part.strip()]


def allowed_master(text: str) -> str:
    """The Spark master a visitor typed (empty: the server's default), if this server allows it."""
    master = text.strip() or resolve_master()
    listed = allowed_masters()
    if master == resolve_master() or master in listed:
        return master
    if not listed and LOCAL_MASTER.fullmatch(master):
        return master
    choices = ", ".join(listed) if listed else "local, local[N], local[*]"
    raise AccessError(f"the Spark master {master!r} is not allowed on this server; use one of: {choices}")


def public_message(message: str, names: dict[str, str] | None = None) -> str:
    """``message`` safe to show a visitor: each path in ``names`` replaced by its public name (an
    upload's original file name), and any other server path outside the data roots by its last part."""
    for path, name in (names or {}).items():
        message = message.replace(f"file:{path}", name).replace(path, name)
    roots = data_roots()

    def hide(match: re.Match) -> str:
        path = Path(match[1])
        return match[1] if _inside(path, roots) else path.name or "/"

    return _PATH.sub(hide, message)


def save_upload(stream: BinaryIO, name: str) -> Path:
    """Store an uploaded CSV or CSV.gz in the upload area, read in 1 MB chunks, and return its path.

    The stored name is the sha256 of the content (so the same upload is stored once) with the
    suffix of ``name``; nothing of the visitor's file name reaches the file system. The file is
    written under a temporary name and renamed when complete, and old uploads are removed.
    """
    folder = upload_dir()
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".csv.gz" if name.lower().endswith(".gz") else ".csv"
    digest = hashlib.sha256()
    temporary = folder / f"{STAGING_PREFIX}{os.getpid()}-{time.monotonic_ns()}{suffix}"
    try:
        with open(temporary, "wb") as out:
            for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
                digest.update(chunk)
                out.write(chunk)
        target = folder / f"{digest.hexdigest()[:32]}{suffix}"
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    os.utime(target)  # a fresh upload of an old file is young again
    remove_old_uploads(keep=target)
    return target


def remove_old_uploads(keep: Path | None = None, max_age_s: float | None = None) -> list[Path]:
    """Remove uploads (and unfinished ones) older than ``max_age_s`` (``$FER_UPLOAD_MAX_AGE_H``
    hours, default 24), except ``keep``; returns what was removed."""
    if max_age_s is None:
        max_age_s = float(os.environ.get(UPLOAD_AGE_ENV) or 24) * 3600
    folder = upload_dir()
    if not folder.is_dir():
        return []
    now, removed = time.time(), []
    for path in folder.iterdir():
        try:
            old = now - path.stat().st_mtime > max_age_s
        except OSError:
            continue  # removed by another session meanwhile
        if old and path != keep:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed
