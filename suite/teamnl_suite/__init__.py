"""The suite: the ``teamnl`` command that runs, seeds and operates the four services locally.

Service packages are imported inside the commands that need them, never at module level:
``teamnl_shared`` does not depend on the services.
"""
