-- Argo CD resource actions offered on a MemoryGraph.
local actions = {}
local annotations = obj.metadata.annotations or {}
local pause = string.lower(annotations["memorygraph.io/paused"] or "")
local paused = pause == "true" or pause == "1" or pause == "yes"
actions["restart"] = { ["disabled"] = paused }
actions["pause"] = { ["disabled"] = paused }
actions["resume"] = { ["disabled"] = not paused }
return actions
