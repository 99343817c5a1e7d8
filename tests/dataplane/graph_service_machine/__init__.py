"""The state machine `test_graph_model` runs, in parts: its state and the helpers every rule
uses, the strategies it draws requests from, and its rules by area of the API."""
