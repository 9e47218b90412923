"""The torrent record, declared once: every field a record carries, its type and what it means.

The record is the public face of a torrent (docs/protocol.md, "Torrent record"): what a
snapshot, a diff, ``/api/torrents`` and the database row hold. Everything else that lists its
fields is derived from ``TorrentRecord`` here, so that adding a field cannot leave one of
them behind:

- ``FIELDS`` (the order records are built and shown in; ``torrents.FIELDS``, the ``sort``
  values ``/api/torrents`` accepts),
- the store's columns and its prepared upsert (store.py: which columns are text, JSON, bool),
- the OpenAPI description of a record (openapi.py documents ``TorrentRecord`` itself),
- the tests' record checks (tests/fakes.py, ``check_record``).

tests/test_record.py checks what cannot be derived: the Tortoise model has a column of the
right kind for every field, the projection (torrents.py) builds exactly these fields, and
docs/protocol.md lists every one.

The ``TypedDict`` is ``typing_extensions``' before Python 3.12 and ``typing``'s from 3.12 on:
pydantic (through quart-schema) builds the OpenAPI schema from it and refuses ``typing``'s
before 3.12, while quart-schema recognises only ``typing``'s from 3.12 on
(``typing.is_typeddict``; ``test_regression_openapi_failed_on_python_3_12``).
"""

from __future__ import annotations

import sys
import types
from typing import Any, Union, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 12):
    from typing import TypedDict
else:
    from typing_extensions import TypedDict


class TorrentRecord(TypedDict):
    """A torrent (docs/protocol.md, "Torrent record"). Sizes are bytes, times unix seconds."""

    #: Info-hash, lower-case hex: 40 characters (64 for a v2-only torrent). The key of a record.
    hash: str
    #: Display name; any Unicode, newlines included (JSON escapes them, a frame never splits).
    name: str
    #: qBittorrent's own state word (``downloading``, ``stalledDL``, ``pausedUP``…), unchanged.
    state: str
    #: The state in plain words (torrents.PHASES), so clients need not know qBittorrent's states.
    phase: str
    #: 0.0 – 1.0, rounded to 4 places. qBittorrent shows 1.0 while bytes are left: see complete.
    progress: float
    #: Nothing left to download *and* an upload state: the one reliable "done".
    complete: bool
    #: Bytes selected for download.
    size: int
    #: Bytes downloaded, all time.
    downloaded: int
    #: Bytes still to download (0 once complete).
    amount_left: int
    #: Download speed, bytes per second.
    dl_speed: int
    #: Upload speed, bytes per second.
    up_speed: int
    #: Seconds to completion; None when unknown or infinite (qBittorrent's 100-day sentinel).
    eta: int | None
    #: Share ratio, rounded to 4 places (0.0 where qBittorrent's would be infinite).
    ratio: float
    #: Connected seeds.
    seeds: int
    #: Connected leechers.
    peers: int
    #: qBittorrent category; "" when none.
    category: str
    #: qBittorrent tags, split on commas and trimmed.
    tags: list[str]
    #: Where the files are saved; "" when qBittorrent does not say.
    save_path: str
    #: When the torrent was added, unix seconds.
    added_at: int
    #: When it completed, unix seconds; None until complete (or when qBittorrent does not know).
    completed_at: int | None


#: The record's fields, in declaration order: the order records are built and shown in.
FIELDS: tuple[str, ...] = tuple(TorrentRecord.__annotations__)

#: Each field's type, resolved (``int | None`` for ``eta``).
TYPES: dict[str, Any] = get_type_hints(TorrentRecord)


def nullable(field: str) -> bool:
    """True when the field may be ``None``."""
    return type(None) in get_args(TYPES[field])


def base_type(field: str) -> type:
    """The field's type without ``None`` and without its items: str, int, float, bool, list."""
    hint = TYPES[field]
    if get_origin(hint) in (types.UnionType, Union):
        (hint,) = (a for a in get_args(hint) if a is not type(None))
    origin = get_origin(hint)
    kind = origin if origin is not None else hint
    assert isinstance(kind, type), f"{field}: unexpected type {hint!r}"
    return kind


def fields_of_type(kind: type) -> tuple[str, ...]:
    """The fields of one base type, in record order (``fields_of_type(str)``)."""
    return tuple(f for f in FIELDS if base_type(f) is kind)
