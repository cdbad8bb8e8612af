"""Several processes, one homeserver: what they tell each other and how.

A deployment with workers runs many processes against one PostgreSQL. Each stream
(room events, receipts, typing, ...) has its writer processes (``stream_writers``);
every other process reads what the writers persisted. The writers tell the others,
over Redis pub/sub, where their streams have got to and what changed
(``notices``), so that readers wake their long-polls and drop stale cache entries.
A single process (the default, and always on SQLite) publishes nothing and needs no
Redis: every notice is applied locally as before.
"""
