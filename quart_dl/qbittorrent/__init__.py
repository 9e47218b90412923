"""Everything that talks to one qBittorrent: its session, its poller, its status, the unit.

The service holds one ``Instance`` per qBittorrent it follows (``instance.py``). Nothing in
here imports the web layer: data flows out of this package through the hub, never back in.
"""
