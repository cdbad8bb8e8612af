"""The homeserver's services, protocol logic and process entry points."""

import os

# aiohttp keeps its signal handler lists in frozenlist, whose compiled extension is
# C++: importing it maps libstdc++ into the process (0.9 MB resident) for lists that
# are read a few times per request. Its pure-Python twin behaves the same; this has
# to be decided before aiohttp is first imported, which is after this package.
os.environ.setdefault("FROZENLIST_NO_EXTENSIONS", "1")
