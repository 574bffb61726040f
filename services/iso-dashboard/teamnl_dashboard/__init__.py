"""The ISO NL dashboard: the web app (`app`), its consumer-only worker (`worker`) and the
projection rebuild (`rebuild`)."""

VERSION = "1.0.0"
