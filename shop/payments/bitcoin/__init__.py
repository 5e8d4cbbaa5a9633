"""Self-custodial Bitcoin checkout.

Layers: descriptor.py (embit, watch-only keys) and node.py (the node's RPC/ZMQ) know nothing of
the shop; invoice.py is the service (addresses, amounts, the invoice state machine, PaymentEvents
to orders.service); watcher.py reads the chain; simulated.py is the demo's pretend chain;
method.py and views.py connect it to checkout and the payment page. Only views.py imports Flask.
"""
