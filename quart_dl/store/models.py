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
