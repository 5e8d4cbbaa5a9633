"""Personal-data protection: field encryption (``crypto``) and log redaction (``logging``).

Nothing in this package imports Flask or SQLAlchemy so it can be used from the CLI,
background jobs and tests without an application context.
"""
