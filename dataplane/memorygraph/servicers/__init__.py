"""gRPC adapters: protobuf in, domain calls, protobuf out. No graph rules here."""
