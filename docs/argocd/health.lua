-- Argo CD health of a memorygraph.io/v1alpha1 MemoryGraph.
-- Healthy only when the operator has acted on the latest spec (observedGeneration) and
-- reports Ready=True; Progressing while shards move between the pods (Rebalancing=True);
-- Suspended while paused; Degraded on Degraded=True, a stuck move or an invalid spec.
local hs = { status = "Progressing", message = "Waiting for the operator" }

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local annotations = obj.metadata.annotations or {}
-- The values the operator takes as "paused" (memorygraph_operator.reconcile.inputs.is_paused).
local pause = string.lower(annotations["memorygraph.io/paused"] or "")
local paused = condition("Paused")
if pause == "true" or pause == "1" or pause == "yes" or (paused ~= nil and paused.status == "True") then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused (memorygraph.io/paused)"
  return hs
end

if obj.status == nil then
  return hs
end

local ready = condition("Ready")
local degraded = condition("Degraded")
local generation = obj.metadata.generation or 0
local observed = obj.status.observedGeneration or 0

if ready ~= nil and ready.status == "False" and ready.reason == "InvalidSpec" and observed >= generation then
  hs.status = "Degraded"
  hs.message = ready.message or "Invalid spec"
  return hs
end
if observed < generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.message or degraded.reason
  return hs
end
-- Shards moving between the pods (or waiting to): serving, but not settled yet; a move that
-- keeps failing needs a human.
local rebalancing = condition("Rebalancing")
if rebalancing ~= nil and rebalancing.status == "True" and rebalancing.reason == "MoveStuck" then
  hs.status = "Degraded"
  hs.message = rebalancing.message or rebalancing.reason
  return hs
end
if ready ~= nil and ready.status == "True" and rebalancing ~= nil and rebalancing.status == "True" then
  hs.message = rebalancing.message or rebalancing.reason
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if ready ~= nil then
  hs.message = ready.message or ready.reason or hs.message
end
return hs
