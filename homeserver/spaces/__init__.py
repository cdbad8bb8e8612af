"""Spaces: the room hierarchy a space's ``m.space.child`` events describe
(client-server API "Spaces", s2s "Spaces"), and room summaries."""
