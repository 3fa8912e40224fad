"""arbiter: gRPC provider and arbiter services and their SQL storage."""
