"""``python -m cd7kit``: the same as the ``cd7kit`` command."""

from cd7kit.cli import main

main()
