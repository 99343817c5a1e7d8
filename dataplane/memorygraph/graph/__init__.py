"""Graph rules: sessions, nodes, edges, LLM turns, templates, queries and traversal."""
