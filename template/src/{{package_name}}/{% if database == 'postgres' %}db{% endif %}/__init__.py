"""The service's PostgreSQL database: the mapped base, the engine and its sessions, and outages.

- `base.py`: `Base`, which every table is mapped on, with one naming convention for constraints;
- `engine.py`: the engine (one pool per process), the session factory and the readiness check;
- `errors.py`: a database outage answers 503 as a JSON:API error, never a stack trace.

Each resource keeps its tables and its SQL next to it (`widgets/storage.py`); the schema
changes through Alembic migrations, in `migrations/` at the project's root.
"""
