"""LND over its REST API (grpc-gateway), with a pinned TLS certificate and a restricted macaroon."""
