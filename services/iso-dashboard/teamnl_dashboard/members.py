"""``python -m teamnl_dashboard.members create --email ... --role ... [--password-stdin]``."""

from .auth.cli import cli

if __name__ == "__main__":
    cli()
