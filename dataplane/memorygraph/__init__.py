"""MemoryGraph: the memory of LLM applications as a typed graph, served over gRPC."""

__version__ = "0.1.0"
