-- Argo CD health for every landingzone.dev kind (the same conditions on every kind):
--   Ready=True and no drift                    -> Healthy
--   Ready=True with drift (e.g. Observe mode)  -> Degraded (AWS differs from Git)
--   Synced=False (an error that needs a human) -> Degraded, with the operator's message
--   Ready=False while creating or waiting      -> Progressing
--   status not written yet / stale generation  -> Progressing
local hs = { status = "Progressing", message = "Waiting for the landing-zone operator" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.metadata ~= nil and obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
   and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "The operator has not seen the latest spec yet"
  return hs
end
local ready, synced
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Synced" then synced = c end
end
local progressing = { Creating = true, AccountNotYetVisible = true, AccountNotYetAccessible = true,
                      WaitingForDependency = true, WouldCreate = true, Throttled = true,
                      AwsUnreachable = true, AwsTransientError = true,
                      PolicyTypePendingEnable = true, PolicyNotYetVisible = true,
                      Provisioning = true, Pending = true }
if synced ~= nil and synced.status == "False" and not progressing[synced.reason or ""] then
  hs.status = "Degraded"
  hs.message = (synced.reason or "Error") .. ": " .. (synced.message or "")
  return hs
end
if ready == nil then
  return hs
end
if ready.status == "True" then
  local drift = obj.status.driftCount or 0
  if drift > 0 then
    hs.status = "Degraded"
    hs.message = tostring(drift) .. " field(s) in AWS differ from Git (see status.drift)"
  else
    hs.status = "Healthy"
    hs.message = ready.message or "Ready"
  end
  return hs
end
if progressing[ready.reason or ""] then
  hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
  return hs
end
hs.status = "Degraded"
hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
return hs
