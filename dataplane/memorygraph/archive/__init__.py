"""Archival: move old sessions out of the graph into a Data-Vault or S3-compatible storage under
a compliance retention policy, and bring them back. See docs/archival.md."""
