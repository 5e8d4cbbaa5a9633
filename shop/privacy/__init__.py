"""Personal-data protection.

* ``crypto``  envelope encryption (AES-GCM data keys wrapped by the master key); no Flask, no DB.
* ``logging`` log redaction and private request logs; no Flask, no DB.
* ``store``   the only reader/writer of ``order_contacts``; ``seal``/``unseal`` for other features.
* ``purge``   retention rules and erasure (``register_eraser``, ``register_hold``).
* ``ledger``  the immutable bookkeeping ledger and its CSV export.
* ``export``  "Download my data"; ``views`` and ``cli`` are the thin web and command layers.
"""
