"""Connections to other services: the LLM-Registry (usage reporting)."""
