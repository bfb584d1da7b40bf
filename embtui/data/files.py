"""Finding input files: symlink loops, broken links, compressed files and the case of file names."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from embtui.errors import DataError

# The first bytes of the compressed formats people hand to an importer by mistake.
_MAGIC = (
    (b"\x1f\x8b", "gzip", "gunzip -k"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
    (b"BZh", "bzip2", "bunzip2 -k"),
    (b"\xfd7zXZ\x00", "xz", "unxz -k"),
    (b"PK\x03\x04", "zip", "unzip"),
)
COMPRESSED_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".bz2": "bzip2", ".xz": "xz",
                       ".zip": "zip"}


def display_name(path: str | os.PathLike[str]) -> str:
    """How a file is named in messages: the path as the user gave it, quoted and escaped when it
    holds a line break or another unprintable character (messages stay one line)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def stat_problem(path: Path) -> str | None:
    """Why ``path`` cannot be opened, in words ("not found", "a symlink loop", ...); None if it can."""
    try:
        os.stat(path)
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop (the link points, directly or not, back to itself)"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return f"is a broken symlink (it points to '{os.readlink(path)}', which does not exist)"
        if exc.errno == errno.ENOENT:
            return "not found"
        if exc.errno == errno.ENOTDIR:
            return "not found (a folder on its path is a file)"
        return f"cannot be read: {exc.strerror or exc}"


def require_file(path: Path, what: str, hint: str | None = None) -> None:
    """Raise a one-line DataError unless ``path`` is a regular file we can open."""
    problem = stat_problem(path)
    if problem is not None:
        if problem == "not found":
            hint = _compressed_sibling_hint(path) or hint
        raise DataError(f"{what} {problem}", file=display_name(path),
                        hint=hint or "check the path")
    if not path.is_file():
        raise DataError(f"{what} is not a regular file", file=display_name(path),
                        hint=hint or "give the path of a file")


def require_folder(path: Path, what: str, hint: str) -> None:
    problem = stat_problem(path)
    if problem is not None:
        raise DataError(f"{what} {problem}", file=display_name(path), hint=hint)
    if not path.is_dir():
        raise DataError(f"{what} is not a folder", file=display_name(path), hint=hint)


def find_in(folder: Path, name: str) -> Path:
    """``folder/name``, or the one entry whose name differs only in case (``CORPUS.JSONL``).

    Several case-variants of one name are an error (which one would be meant?). When nothing
    matches, the exact path is returned so the caller's "not found" names it.
    """
    exact = folder / name
    if os.path.lexists(exact):
        others = [p for p in _entries(folder) if p.name.lower() == name.lower() and p.name != name]
    else:
        others = [p for p in _entries(folder) if p.name.lower() == name.lower()]
        if len(others) == 1:
            return others[0]
        if not others:
            return exact
    if others:
        names = ", ".join(sorted(p.name for p in [exact, *others] if os.path.lexists(p)))
        raise DataError(f"several files for {name}: {names}", file=display_name(folder),
                        hint="keep one of them")
    return exact


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _compressed_sibling_hint(path: Path) -> str | None:
    for suffix, kind in COMPRESSED_SUFFIXES.items():
        sibling = path.with_name(path.name + suffix)
        if os.path.lexists(sibling):
            return f"found {sibling.name} ({kind}-compressed): decompress it first"
    return None


def compressed_kind(head: bytes) -> tuple[str, str] | None:
    """(format, command to decompress) when ``head`` (a file's first bytes) starts a compressed file."""
    for magic, kind, command in _MAGIC:
        if head.startswith(magic):
            return kind, command
    return None


def refuse_compressed(head: bytes, path: Path) -> None:
    """A DataError for a compressed file (read as text it would be 'not valid UTF-8: byte 0x8b')."""
    found = compressed_kind(head)
    if found is not None:
        kind, command = found
        raise DataError(f"this is a {kind}-compressed file, not text", file=display_name(path),
                        hint=f"decompress it first, e.g. `{command} {path.name}`, and import "
                             "the result")
