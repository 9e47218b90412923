"""The lab: test and demo scaffolding, never imported by the service.

``quart-dl serve`` and ``quart-dl check`` import nothing from here (a test checks it). The
lab is what the tests, the end-to-end and Home Assistant suites, the benchmarks and
``quart-dl demo`` need around the service: real parts to run it against, started and
stopped with deadlines.

* :mod:`~quart_dl.lab.qbittorrent_nox`: real ``qbittorrent-nox`` daemons on loopback,
  locked down, in throw-away profiles;
* :mod:`~quart_dl.lab.transfer`: a throttled BitTorrent transfer between two of them
  (needs ``torf``: the ``demo`` extra);
* :mod:`~quart_dl.lab.server_process`: ``quart-dl serve`` as a real process;
* :mod:`~quart_dl.lab.sse_reader`: the one SSE test reader, parsing as EventSource does;
* :mod:`~quart_dl.lab.wait`: the one wait-with-a-deadline helper, sync and async;
* :mod:`~quart_dl.lab.chromium`: the browser the end-to-end suite drives.

Import the modules themselves; this package imports nothing, so that using one part never
pulls in another's dependencies.
"""
