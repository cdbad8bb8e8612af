-- Nothing to create: SQLite has one writer, in one process, which counts row IDs in
-- memory after the largest stored (storage/ids.py). The PostgreSQL variant creates the
-- sequences that several processes share.
SELECT 1;
