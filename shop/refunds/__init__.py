"""Bitcoin refunds: the merchant asks for an address, the customer gives it on their order page."""
