-- PUT Patient/p1 … Patient/pN in order (update-as-create), one thread; stops after N.
local template = io.open(os.getenv("BODY")):read("*a")
local n = tonumber(os.getenv("N"))
local i = 0
request = function()
  i = i + 1
  if i > n then wrk.thread:stop() end
  local id = "p" .. i
  local body = template:gsub('"id"%s*:%s*"[^"]*"', '"id":"' .. id .. '"', 1)
  return wrk.format("PUT", "/fhir/Patient/" .. id, {["Content-Type"] = "application/fhir+json"}, body)
end
response = function(status)
  if status ~= 200 and status ~= 201 then print("seed failed with " .. status); wrk.thread:stop() end
end
