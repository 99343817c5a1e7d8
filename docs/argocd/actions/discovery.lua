-- Argo CD resource actions offered on a MemoryGraph.
local actions = {}
local annotations = obj.metadata.annotations or {}
local paused = annotations["memorygraph.io/paused"] == "true"
actions["restart"] = { ["disabled"] = paused }
actions["pause"] = { ["disabled"] = paused }
actions["resume"] = { ["disabled"] = not paused }
return actions
