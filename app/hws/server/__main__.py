"""`python -m hws.server`: the server process (hws.server.main)."""

from hws.server.main import main

main()
