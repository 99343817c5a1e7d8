-- Rolls every pod of the graph (like `kubectl rollout restart`): the operator copies this
-- annotation onto the pod template.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["memorygraph.io/restartedAt"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
