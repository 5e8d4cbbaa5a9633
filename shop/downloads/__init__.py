"""Digital goods: the merchant's file per product, and expiring, count-limited download links."""
