"""``python -m teamnl_shared.suite`` = ``teamnl`` (how ``teamnl up`` starts the supervisor)."""

from teamnl_shared.suite.cli import app

app()
