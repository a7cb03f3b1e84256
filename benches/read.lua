-- GET a random Patient among p1 … pN.
-- Every FHIR request needs a token: TOKEN comes from `hearth token` (see the scripts).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
local n = tonumber(os.getenv("N"))
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("GET", "/fhir/Patient/p" .. math.random(1, n))
end
