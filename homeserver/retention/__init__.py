"""Message retention policies (MSC1763; Synapse's ``retention`` option).

``policy`` holds the rules (pure), ``service`` the policies of rooms and the hiding
of expired events from clients, ``purge_jobs`` the background jobs that delete
expired events through the history purge of ``homeserver/admin/purge.py``.
"""
