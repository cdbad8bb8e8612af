"""Synapse's admin API (``/_synapse/admin/...``), so existing admin tools work.

One module per concern; every handler starts with ``require_admin`` and calls the
services of ``homeserver.admin``.
"""
