-- GET a random Patient among p1 … pN.
local n = tonumber(os.getenv("N"))
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("GET", "/fhir/Patient/p" .. math.random(1, n))
end
