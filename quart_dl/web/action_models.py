"""Request and answer models of the action routes (``actions.py``), for validation and for
``/openapi.json``.

Strict types (``"true"`` is not a boolean, ``"5"`` is not a number): a program that sends
the wrong type is told so by name rather than having it guessed. Unknown keys are ignored,
as on every route (a newer panel on an older server). What depends on the verb (``rename``
needs ``name`` and one hash) is checked in ``actions.py``, which names the field at fault.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..qbittorrent.client import ACTION_ALIASES, ACTIONS
from ..torrents import HASH_RE

CLIENT_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: Hashes one request may name (a selection of every torrent of a big instance).
MAX_HASHES = 20_000
MAX_TEXT = 4096

#: Control characters and line separators: never part of a link, a path, a name or a tag
#: (and qBittorrent splits ``urls`` on ``\n``, reading a line that is no link as a path).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

VERBS = (*ACTIONS, *ACTION_ALIASES)
#: The largest limit qBittorrent stores (a C ``int`` of bytes/s). Beyond it qBittorrent
#: (4.5.2 and 5.1, measured) keeps only the low 32 bits: 2**32 + 1024 sets 1 KiB/s, 2**31
#: sets "unlimited", neither what was asked.
MAX_LIMIT = 2**31 - 1


def one_line(value: str | None) -> str | None:
    """A name or path for qBittorrent: at most ``MAX_TEXT`` characters, no control character
    (a NUL or a line break is never part of a path, a category or a name)."""
    if value is not None and (len(value) > MAX_TEXT or _CONTROL.search(value)):
        raise ValueError(f"at most {MAX_TEXT} characters, on one line, without control characters")
    return value


def tag_list(value: list[str] | None) -> list[str] | None:
    """Tags for qBittorrent, which sends them joined by commas: none may hold one."""
    if value is None:
        return None
    tags = [t.strip() for t in value]
    if not tags or any(not t or "," in t or len(t) > 200 or _CONTROL.search(t) for t in tags):
        raise ValueError("tags must be a non-empty list of non-empty names without commas")
    return tags


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    instance: str | None = Field(
        None,
        description="The qBittorrent instance's id (GET /api/instances); default: the primary (the first"
        " configured). Unknown: 404 `unknown_instance`.",
    )
    client: str | None = Field(
        None,
        description="Who asks (shown to every viewer in the `action` event): `[A-Za-z0-9._-]{1,64}`.",
    )

    @field_validator("client")
    @classmethod
    def _client(cls, value: str | None) -> str | None:
        if value is not None and not CLIENT_RE.match(value):
            raise ValueError("client must be 1 to 64 of A-Z a-z 0-9 . _ -")
        return value


class ActionRequest(_Body):
    """``POST /api/torrents/actions``: one verb on some torrents, or on all."""

    action: str = Field(description="The verb.", json_schema_extra={"enum": list(VERBS)})
    hashes: list[str] | Literal["all"] = Field(description="Info-hashes (40 or 64 hex characters), or `all`.")
    value: bool = Field(True, description="`force_start`: on or off.")
    delete_files: bool = Field(False, description="`delete`: also delete the downloaded files.")
    category: str | None = Field(None, description='`set_category`: the category (`""`: none).')
    create: bool = Field(False, description="`set_category`: create the category if it does not exist.")
    tags: list[str] | None = Field(None, description="`add_tags`, `remove_tags`.")
    dl_limit: int | None = Field(
        None, ge=0, le=MAX_LIMIT, description="`set_limits`: bytes/s, 0 or null = unlimited."
    )
    up_limit: int | None = Field(
        None, ge=0, le=MAX_LIMIT, description="`set_limits`: bytes/s, 0 or null = unlimited."
    )
    save_path: str | None = Field(None, description="`move`: the new save path.")
    name: str | None = Field(None, description="`rename`: the new name (exactly one hash).")

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        if value not in VERBS:
            raise ValueError(f"unknown action {value[:40]!r}; expected one of {', '.join(VERBS)}")
        return ACTION_ALIASES.get(value, value)

    @field_validator("hashes")
    @classmethod
    def _hashes(cls, value: list[str] | str) -> list[str] | str:
        if value == "all":
            return value
        if not value:
            raise ValueError('hashes is empty; name at least one torrent, or "all"')
        if len(value) > MAX_HASHES:
            raise ValueError(f"hashes names more than {MAX_HASHES} torrents")
        out: list[str] = []
        for item in value:
            text = item.lower()
            if not HASH_RE.match(text):
                raise ValueError(f"{item[:70]!r} is not a hash (40 or 64 hexadecimal characters)")
            out.append(text)
        return list(dict.fromkeys(out))

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return tag_list(value)

    @field_validator("category", "save_path", "name")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return one_line(value)


class TransferRequest(_Body):
    """``POST /api/transfer``: the global limits; only the keys given change."""

    alt_speed: bool | None = Field(None, description="Alternative speed limits on or off.")
    dl_limit: int | None = Field(
        None, ge=0, le=MAX_LIMIT, description="Global download limit, bytes/s (0 = unlimited)."
    )
    up_limit: int | None = Field(
        None, ge=0, le=MAX_LIMIT, description="Global upload limit, bytes/s (0 = unlimited)."
    )


class AddRequest(_Body):
    """``POST /api/torrents/add`` as JSON (links only; files come as multipart/form-data with
    ``torrents`` file parts, and these same names as fields: ``urls`` newline-separated,
    ``tags`` comma-separated, ``stopped`` ``true``/``false``)."""

    urls: list[str] = Field(description="magnet: or http(s): links.")
    save_path: str | None = None
    category: str | None = None
    tags: list[str] | None = None
    stopped: bool | None = Field(None, description="Add stopped (paused).")

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return check_urls(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return tag_list(value)

    @field_validator("category", "save_path")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return one_line(value)


def check_urls(value: list[str]) -> list[str]:
    """Links qBittorrent can add: ``magnet:``, ``http(s)://`` (and ``bc://bt/``), one each.

    A link with a line break inside would reach qBittorrent as two lines (the library joins
    the list with ``\n``), the second unchecked: ``/path/x.torrent`` there adds a file from
    qBittorrent's own disk. So no control character is allowed inside a link.
    """
    urls = [u.strip() for u in value if u.strip()]
    for url in urls:
        if not url.lower().startswith(("magnet:?", "http://", "https://", "bc://bt/")) or len(url) > 8192:
            raise ValueError(f"{url[:60]!r} is not a magnet: or http(s):// link")
        if _CONTROL.search(url):
            raise ValueError(f"{url[:60]!r} holds a line break or control character; give one link per item")
    return urls


class ActionAnswer(BaseModel):
    """What an action was applied to."""

    action: str
    instance: str
    hashes: list[str]
    id: str
    result: Literal["accepted"]


class TransferAnswer(BaseModel):
    """The global limits after the change."""

    instance: str
    alt_speed: bool
    dl_limit: int
    up_limit: int
    id: str
    result: Literal["accepted"]


class AddAnswer(BaseModel):
    """How many links and files were handed to qBittorrent."""

    instance: str
    added: int
    id: str
    result: Literal["accepted"]


class Access(BaseModel):
    """What the credentials of this request may do (the panel hides what they cannot)."""

    read: bool
    act: bool
    token: Literal["full", "read", "none"]
    actions_enabled: bool


class Category(BaseModel):
    """A category and its save path."""

    name: str
    save_path: str


class Categories(BaseModel):
    """The instance's categories."""

    categories: list[Category]


class Tags(BaseModel):
    """The instance's tags."""

    tags: list[str]


def params_of(body: ActionRequest) -> dict[str, Any]:
    """The verb's own parameters, only those given where that matters (``set_limits``)."""
    action = body.action
    if action == "force_start":
        return {"value": body.value}
    if action == "delete":
        return {"delete_files": body.delete_files}
    if action == "set_category":
        return {"category": body.category or "", "create": body.create}
    if action in ("add_tags", "remove_tags"):
        return {"tags": body.tags}
    if action == "set_limits":
        return {k: getattr(body, k) or 0 for k in ("dl_limit", "up_limit") if k in body.model_fields_set}
    if action == "move":
        return {"save_path": body.save_path}
    if action == "rename":
        return {"name": body.name}
    return {}
