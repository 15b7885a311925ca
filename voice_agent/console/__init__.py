"""The supervisor console at ``/console``: accounts, call review, live calls.

``routes.console_router(settings)`` is what the server mounts; ``cli.users_app`` manages accounts.
"""
