"""The state machine of test_graph_model: its state, strategies, and rules by area of the API."""
