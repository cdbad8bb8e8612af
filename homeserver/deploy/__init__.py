"""Deployment files for running one homeserver as several processes (workers).

``workers`` plans the processes and their ports from ``--workers``, ``routes`` is
the table of which process serves each public path, ``nginx`` and ``supervisord``
write the proxy's and the supervisor's configuration from them, and ``generate``
writes every file (``python -m homeserver generate-workers``).
"""
