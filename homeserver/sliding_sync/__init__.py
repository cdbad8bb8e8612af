"""Simplified sliding sync (MSC4186), as Element X and matrix-js-sdk's SlidingSync use it.

Modules: ``request`` (PURE: the request body), ``required_state`` (PURE: which state a
room asks for), ``connections`` (what each connection holds, by ``pos``),
``room_list`` (the user's rooms, list filters, order and windows), ``rooms`` (each
room's part of the response), ``extensions`` (to-device, e2ee, account data,
receipts, typing), ``summaries`` (the per-room facts kept on write), ``service``
(one request, and the long-poll).
"""
