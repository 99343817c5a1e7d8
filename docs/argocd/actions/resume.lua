-- Lets the operator reconcile the graph again; it catches up with every change made meanwhile.
if obj.metadata.annotations ~= nil then
  obj.metadata.annotations["memorygraph.io/paused"] = nil
end
return obj
