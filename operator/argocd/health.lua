-- Argo CD health check for storekeeper.dev/Store.
-- Install under resource.customizations.health.storekeeper.dev_Store in
-- argocd-cm (see docs/operator.md). Reads only status fields the operator
-- writes: observedGeneration, phase and the kstatus conditions.
local hs = {}

local function condition(type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition("Ready")
local stalled = condition("Stalled")
local message = ""
if ready ~= nil and ready.message ~= nil then
  message = ready.message
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end

local phase = obj.status.phase
if phase == "Ready" then
  hs.status = "Healthy"
  hs.message = "All components ready (" .. (obj.status.ready or "") .. ")"
elseif phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "spec.paused is set"
elseif phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = message
elseif phase == "RollingBack" then
  hs.status = "Progressing"
  local stable = obj.status.rollout and obj.status.rollout.stableRevision or "unknown"
  hs.message = "Rolling back to revision " .. stable
else
  hs.status = "Progressing"
  hs.message = message
end
return hs
