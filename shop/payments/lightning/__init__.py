"""Lightning through the merchant's own node (LND over REST, Core Lightning over JSON-RPC).

backend.py is the one interface both nodes sit behind; service.py records what the node says
(settled invoices) and tells the order; listener.py follows the node in the worker.
"""
