"""Serving the app: the socket layer that carries event streams itself, and Hypercorn for
everything else (``serve.py``)."""
