"""`python -m hws.server`: the server process (hws.server.main), or one line saying the extra `server` is missing."""

from hws.server.entry import server

server()
