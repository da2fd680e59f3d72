-- Argo CD health of mesh.meshsettings.io/MeshSettings, read from its kstatus
-- conditions. Runs with Argo CD's default libraries for argocd-cm scripts
-- (base, table, package, a safe os): no string or math library is used.
local hs = {}

-- Reasons of a Ready=False that only a change by the user (or by the manager
-- of the ConfigMap or istiod) can clear: the reasons of api/v1alpha1/conditions.go.
local terminal = {
  InvalidSpec = true, Conflict = true, LabelConflict = true, MeshDocumentRejected = true,
  MeshConfigOwnedByApply = true, EnvHeldByOtherManager = true,
}

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local meta = obj.metadata or {}
if meta.deletionTimestamp ~= nil then
  -- The operator says why a deletion takes long (Reconciling, "Deleting: ...").
  hs.status = "Progressing"
  hs.message = "Being deleted: the operator removes the mesh keys, istiod env entries and namespace labels it wrote"
  for _, c in ipairs((obj.status or {}).conditions or {}) do
    if c.type == "Reconciling" and c.status == "True" and c.message ~= nil and c.message ~= "" then
      hs.message = "Being deleted: " .. c.message
    end
  end
  return hs
end

local generation = meta.generation or 0
local status = obj.status or {}
local observed = status.observedGeneration or 0

-- Conditions of the current generation only: one written for an older
-- generation says nothing about the spec Argo CD just applied.
local ready, reconciling, stalled
for _, c in ipairs(status.conditions or {}) do
  if c.observedGeneration == nil or c.observedGeneration >= generation then
    if c.type == "Ready" then
      ready = c
    elseif c.type == "Reconciling" then
      reconciling = c
    elseif c.type == "Stalled" then
      stalled = c
    end
  end
end

if observed < generation then
  hs.status = "Progressing"
  if reconciling ~= nil and reconciling.status == "True" then
    hs.message = text(reconciling, "Reconciling")
  elseif observed == 0 then
    hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
  else
    hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation) ..
      " (status is of generation " .. tostring(observed) .. ")"
  end
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = text(reconciling, "Reconciling")
  return hs
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled, "Stalled")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready, "Ready")
  return hs
end
if ready ~= nil and ready.status == "False" and terminal[ready.reason] then
  hs.status = "Degraded"
  hs.message = text(ready, "Not ready")
  return hs
end
hs.status = "Progressing"
hs.message = text(ready, "Waiting for the operator to report Ready")
return hs
