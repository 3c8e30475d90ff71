"""``python -m ratchet_cli``: the ``ratchet`` program."""

from ratchet_cli.main import main

main()
