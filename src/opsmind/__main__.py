"""``python -m opsmind`` is the ``opsmind`` command."""

from opsmind.cli.main import main

main()
