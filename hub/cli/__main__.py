"""``python -m hub.cli`` runs the msphub command line."""

from hub.cli import main

main()
