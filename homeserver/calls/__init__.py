"""VoIP support: TURN server credentials for clients' calls."""
