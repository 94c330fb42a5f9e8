"""Gateway: the public gRPC, HTTP/JSON and web entry point."""
