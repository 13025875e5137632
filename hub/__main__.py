"""``python -m hub`` runs the ``hub`` command."""

from .cli import main

main()
