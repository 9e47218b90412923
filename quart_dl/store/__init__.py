"""The database: Tortoise models (``models.py``) and the store that commits change sets
(``store.py``), SQLite by default, PostgreSQL by URL."""
