-- Stops the operator from changing the graph's children until resumed.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["memorygraph.io/paused"] = "true"
return obj
