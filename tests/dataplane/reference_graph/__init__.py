"""A reference model of the memory graph in plain Python: dicts of nodes and edges and the rules
of the API, written from the API's documented behaviour and independent of the store.

`test_graph_model` drives `GraphService` and this model with the same random operations and
compares them. Each write method first checks the request (raising `Refused` with the error
class the service must raise, before changing anything), then applies it. The ids and times the
service chose are taken from its answer (`got`): an id must be new, a time must be later than
every earlier one and no later than the clock. When the service refused a request the model
accepts, `got` is None and provisional ids and times stand in, so the model can still finish
and the test reports the divergence.
"""

from __future__ import annotations

from .edges import EdgeOperations
from .queries import QueryOperations
from .state import Refused, Segment, Variable, render_segments
from .templates import VALID_PATTERNS, TemplateOperations

__all__ = [
    "VALID_PATTERNS",
    "ReferenceGraph",
    "Refused",
    "Segment",
    "Variable",
    "render_segments",
]


class ReferenceGraph(TemplateOperations, EdgeOperations, QueryOperations):
    """The whole model: its state and every operation of the API on it."""
