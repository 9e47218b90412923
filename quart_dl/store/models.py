"""Tortoise ORM models: what quart-dl saw of each qBittorrent instance.

Times are unix seconds (floats or ints), the same numbers the protocol sends: no time-zone
conversion on the hot path, and SQLite and PostgreSQL store them alike. Torrents are keyed
by (instance, hash) so that several qBittorrent instances can be followed later; one is
configured today.

``Torrent`` holds one column per field of the record declared in record.py (``TorrentRecord``);
the store derives its upsert from that declaration, and tests/test_record.py checks that every
field has a column here of a kind that can hold it (and the same nullability).
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class InstanceRow(Model):
    """A qBittorrent instance and the last status quart-dl had of it."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    url = fields.CharField(max_length=512)
    status = fields.CharField(max_length=32, default="connecting")
    message = fields.TextField(null=True)
    version = fields.CharField(max_length=64, null=True)
    last_poll = fields.FloatField(null=True)
    updated_at = fields.FloatField(default=0.0)

    class Meta:
        table = "instance"


class Torrent(Model):
    """One torrent's public record (record.TorrentRecord, docs/protocol.md), as last committed."""

    id = fields.IntField(primary_key=True)
    instance: fields.ForeignKeyRelation[InstanceRow] = fields.ForeignKeyField(
        "models.InstanceRow", related_name="torrents", on_delete=fields.CASCADE
    )
    hash = fields.CharField(max_length=64, db_index=True)
    name = fields.TextField()
    state = fields.CharField(max_length=32)
    phase = fields.CharField(max_length=16)
    progress = fields.FloatField(default=0.0)
    complete = fields.BooleanField(default=False)
    size = fields.BigIntField(default=0)
    downloaded = fields.BigIntField(default=0)
    amount_left = fields.BigIntField(default=0)
    dl_speed = fields.BigIntField(default=0)
    up_speed = fields.BigIntField(default=0)
    eta = fields.BigIntField(null=True)
    ratio = fields.FloatField(default=0.0)
    seeds = fields.IntField(default=0)
    peers = fields.IntField(default=0)
    category = fields.TextField(default="")
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)
    save_path = fields.TextField(default="")
    added_at = fields.BigIntField(default=0)
    completed_at = fields.BigIntField(null=True)
    updated_at = fields.FloatField(default=0.0)

    class Meta:
        table = "torrent"
        unique_together = (("instance", "hash"),)


class TransferSample(Model):
    """Global speeds at one moment, for the history chart; pruned after the retention."""

    id = fields.BigIntField(primary_key=True)
    instance: fields.ForeignKeyRelation[InstanceRow] = fields.ForeignKeyField(
        "models.InstanceRow", related_name="transfer_samples", on_delete=fields.CASCADE
    )
    t = fields.FloatField(db_index=True)
    dl_speed = fields.BigIntField()
    up_speed = fields.BigIntField()

    class Meta:
        table = "transfer_sample"


class TorrentSample(Model):
    """One active torrent's speeds at one moment (idle torrents are not sampled)."""

    id = fields.BigIntField(primary_key=True)
    instance: fields.ForeignKeyRelation[InstanceRow] = fields.ForeignKeyField(
        "models.InstanceRow", related_name="torrent_samples", on_delete=fields.CASCADE
    )
    hash = fields.CharField(max_length=64)
    t = fields.FloatField(db_index=True)
    dl_speed = fields.BigIntField()
    up_speed = fields.BigIntField()

    class Meta:
        table = "torrent_sample"
        indexes = (("hash", "t"),)


class EventLogMeta(Model):
    """The event log's identity (one row): the database's id, and how far pruning went.

    ``diff_floor``: the newest non-lifecycle event ever pruned (a replay from an id at or
    after it is complete); ``lifecycle_floor``: the same for lifecycle events.
    """

    id = fields.IntField(primary_key=True)
    database_id = fields.CharField(max_length=16)
    diff_floor = fields.BigIntField(default=0)
    lifecycle_floor = fields.BigIntField(default=0)

    class Meta:
        table = "event_log_meta"


class EventLogRun(Model):
    """One start of the server against this database, and the first id it gave out.

    Events published from memory while the database was failing are lost if the process
    dies before they are written, and the next run gives their numbers out again: the run
    in every id tells a lost id (``first_seq`` of the next run or later) from a kept one.
    """

    run = fields.IntField(primary_key=True, generated=False)
    first_seq = fields.BigIntField()
    started_at = fields.FloatField()

    class Meta:
        table = "event_log_run"


class EventRow(Model):
    """One published event, as sent (its SSE frame), kept for replay after a restart."""

    seq = fields.BigIntField(primary_key=True, generated=False)
    run = fields.IntField()
    kind = fields.CharField(max_length=16)
    t = fields.FloatField(db_index=True)
    #: True for events with a lifecycle part (added, completed, removed, actions): the long retention.
    lifecycle = fields.BooleanField(default=False)
    frame = fields.TextField()
    #: The frame's length in bytes: summed to decide replay or snapshot without reading the
    #: frames (PostgreSQL's SUM(LENGTH(frame)) over an hour of busy diffs took ~150 ms).
    size = fields.IntField(default=0)
    #: The lifecycle part (JSON text), what a ``late`` frame tells; null for plain diffs.
    late = fields.TextField(null=True)
    #: The instance the event is about (null: the server as a whole, or a row written before
    #: there were several instances). Added to older databases by ``store.upgrade_schema``.
    instance = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "event_log"
