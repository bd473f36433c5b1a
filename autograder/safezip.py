"""Reading untrusted zip archives without letting them reach outside their folder.

An LMS download, and the zips students put inside it, are checked member by member before
anything is written: an absolute path, a name that climbs out with ``..`` (a zip slip), a
symbolic link, an encrypted member or a zip bomb (too many members, too many bytes, or a member
that expands too many times over) raises :class:`ArchiveError` naming the archive and member.
Members are then streamed to disk, never past the size their header declares.
"""

from __future__ import annotations

import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from autograder.grading import GradingError


class ArchiveError(GradingError):
    """An archive member that must not be extracted (zip slip, link, bomb, encryption)."""


@dataclass(frozen=True)
class Limits:
    """What one import may unpack; beyond it the archive is refused as a possible zip bomb."""

    members: int = 20_000
    member_bytes: int = 512 * 2**20
    total_bytes: int = 4 * 2**30
    #: uncompressed / compressed size, checked for members larger than ``ratio_from`` bytes
    ratio: float = 200.0
    ratio_from: int = 2**20


def member_name(info: zipfile.ZipInfo) -> str:
    """The member's name: zip tools that do not set the UTF-8 flag still write UTF-8 (Python
    decodes such names as cp437); NFC, as macOS writes decomposed accents."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return unicodedata.normalize("NFC", name)


def safe_path(name: str, where: str) -> PurePosixPath | None:
    """The member's relative path, or an ArchiveError for one that could leave its folder."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise ArchiveError(
            f"{where}: member {name!r} has an absolute path; an archive member must stay inside "
            f"the folder it is extracted to. Nothing was imported: download the submissions "
            f"again, or remove that member")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(
            f"{where}: member {name!r} climbs out of its folder with '..' (a zip slip). "
            f"Nothing was imported: remove that member, or ask who made the archive")
    if any(ord(ch) < 32 for part in parts for ch in part):
        raise ArchiveError(f"{where}: member {name!r} has a control character in its name")
    return PurePosixPath(*parts) if parts else None


@dataclass
class Budget:
    limits: Limits
    total: int = 0


def members(zf: zipfile.ZipFile, where: str,
             budget: Budget) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every file member of an archive with its safe path; raises ArchiveError on the first
    member that must not be extracted."""
    limits = budget.limits
    infos = zf.infolist()
    if len(infos) > limits.members:
        raise ArchiveError(f"{where}: {len(infos)} members, more than the {limits.members} "
                           f"allowed: refusing a possible zip bomb")
    out = []
    for info in infos:
        name = member_name(info)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(
                f"{where}: member {name!r} is a symbolic link; a link can point at any file "
                f"of this machine, so the archive is refused. Nothing was imported")
        path = safe_path(name, where)
        if path is None or info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{where}: member {name!r} is encrypted; download the "
                               f"submissions again without a password")
        size = info.file_size
        if size > limits.member_bytes:
            raise ArchiveError(f"{where}: member {name!r} unpacks to {size:,} bytes, more than "
                               f"the {limits.member_bytes:,} allowed: refusing a possible zip bomb")
        if size > limits.ratio_from and size > limits.ratio * max(info.compress_size, 1):
            raise ArchiveError(
                f"{where}: member {name!r} expands {size / max(info.compress_size, 1):,.0f}-fold "
                f"({info.compress_size:,} -> {size:,} bytes): refusing a possible zip bomb")
        budget.total += size
        if budget.total > limits.total_bytes:
            raise ArchiveError(f"{where}: the archive unpacks to more than "
                               f"{limits.total_bytes:,} bytes: refusing a possible zip bomb")
        out.append((info, path))
    return out


def copy_member(source: IO[bytes], dest: Path, declared: int, limit: int, what: str) -> None:
    """Stream one member to ``dest``, stopping at the declared size (a lying header)."""
    cap = min(declared, limit)
    written = 0
    with dest.open("wb") as out:
        while chunk := source.read(min(2**20, cap + 1 - written)):
            written += len(chunk)
            if written > cap:
                raise ArchiveError(f"{what}: more bytes than its header declares ({declared:,}): "
                                   f"refusing a damaged or malicious archive")
            out.write(chunk)
