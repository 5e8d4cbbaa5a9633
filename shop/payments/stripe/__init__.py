"""Stripe Checkout backend: amounts, the API gateway and webhook verification.

Nothing here imports Flask or SQLAlchemy or touches orders: the payments service turns what these
modules report into order changes.
"""
