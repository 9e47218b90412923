"""Synthetic qBittorrent data: torrents as ``sync/maindata`` sends them, and per-poll changes."""

from __future__ import annotations

from typing import Any

from .common import fake_hash


def raw_torrent(i: int) -> dict[str, Any]:
    """A full qBittorrent 4.5 torrent entry (rid 0), small and paused, distinct per index."""
    size = 1_048_576 + i * 1024
    return {
        "name": f"bench-torrent-{i:05d}.bin",
        "state": "pausedDL",
        "progress": 0.25,
        "size": size,
        "downloaded": size // 4,
        "completed": size // 4,
        "amount_left": size - size // 4,
        "dlspeed": 0,
        "upspeed": 0,
        "eta": 8_640_000,
        "ratio": 0.0,
        "num_seeds": 0,
        "num_leechs": 0,
        "category": "bench",
        "tags": "",
        "save_path": "/downloads/bench",
        "added_on": 1_764_446_400 + i,
        "completion_on": -1,
        "last_activity": 1_764_446_412,
        "time_active": 12,
        "hash": fake_hash(i),
        "magnet_uri": f"magnet:?xt=urn:btih:{fake_hash(i)}&dn=bench-torrent-{i:05d}.bin",
        "tracker": "",
        "priority": 0,
        "seq_dl": False,
        "f_l_piece_prio": False,
        "super_seeding": False,
        "force_start": False,
        "auto_tmm": False,
    }


def full_maindata(n: int, first: int = 0) -> dict[str, Any]:
    """The rid-0 answer for n torrents (indices ``first`` … ``first + n - 1``: another
    qBittorrent's torrents are another range, so no hash is in two instances)."""
    return {
        "rid": 1,
        "full_update": True,
        "torrents": {fake_hash(i): raw_torrent(i) for i in range(first, first + n)},
        "categories": {"bench": {"name": "bench", "savePath": "/downloads/bench"}},
        "server_state": {"dl_info_speed": 0, "up_info_speed": 0, "dl_info_data": 0, "up_info_data": 0},
    }


def partial_maindata(n: int, rid: int, changing: int, first: int = 0) -> dict[str, Any]:
    """A steady-state answer: ``changing`` torrents (rotating through all n) changed a few keys.

    Like qBittorrent, every changed torrent also carries keys that churn without being part
    of the public record (``last_activity``, ``time_active``).
    """
    start = (rid * changing) % n
    torrents = {}
    for k in range(changing):
        i = first + (start + k) % n
        size = 1_048_576 + i * 1024
        done = min(size, size // 4 + rid * 4096)
        torrents[fake_hash(i)] = {
            "state": "downloading",
            "progress": round(done / size, 4),
            "downloaded": done,
            "completed": done,
            "amount_left": size - done,
            "dlspeed": 40_960 + rid,
            "eta": max(1, (size - done) // 40_960),
            "last_activity": 1_764_446_412 + rid,
            "time_active": 12 + rid,
        }
    return {
        "rid": rid,
        "torrents": torrents,
        "server_state": {"dl_info_speed": 40_960 * changing + rid, "dl_info_data": rid * 1_000_000},
    }
