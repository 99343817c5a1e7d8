-- Argo CD health of a memorygraph.io/v1alpha1 Plugin: Degraded when its spec is invalid.
local hs = { status = "Progressing", message = "Waiting for the operator" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if (obj.status.observedGeneration or 0) < (obj.metadata.generation or 0) then
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    if c.status == "True" then
      hs.status = "Healthy"
    else
      hs.status = "Degraded"
    end
    hs.message = c.message or c.reason
  end
end
return hs
