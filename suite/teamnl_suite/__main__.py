"""``python -m teamnl_suite`` = ``teamnl`` (how ``teamnl up`` starts the supervisor)."""

from teamnl_suite.cli import app

app()
