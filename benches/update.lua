-- PUT a random Patient among p1 … pN.
local template = io.open(os.getenv("BODY")):read("*a")
local n = tonumber(os.getenv("N"))
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  local id = "p" .. math.random(1, n)
  local body = template:gsub('"id"%s*:%s*"[^"]*"', '"id":"' .. id .. '"', 1)
  return wrk.format("PUT", "/fhir/Patient/" .. id,
    {["Content-Type"] = "application/fhir+json", ["Authorization"] = "Bearer " .. os.getenv("TOKEN")}, body)
end
