-- Search requests for wrk, chosen by the QUERY environment variable, with random patients,
-- names and codes that exist in the data set of benches/search_seed.rs (PATIENTS patients).
-- Every FHIR request needs a token: TOKEN comes from `hearth token` (see the scripts).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
local query = os.getenv("QUERY")
local patients = tonumber(os.getenv("PATIENTS") or "55556")
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))

local families = {"Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
  "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke",
  "Patel", "Khan", "Lewis", "James", "Phillips", "Mason", "Mitchell", "Rose", "Davis", "Rodriguez",
  "Cox", "Alexander", "Morgan", "Moore", "Martin", "Price", "Scott", "Hughes", "Edwards", "M%C3%BCller"}
local suffixes = {"", "son", "-Hart", "ley", "field"}
local codes = {"8480-6", "8462-4", "8867-4", "9279-1", "8310-5", "29463-7", "8302-2", "2339-0", "2093-3", "4548-4"}

local function family()
  return families[math.random(1, 40)] .. suffixes[math.random(1, 5)]
end
local function patient()
  return "sp" .. math.random(0, patients - 1)
end
local function code()
  return codes[math.random(1, 10)]
end

local builders = {
  name = function() return "/fhir/Patient?name=" .. family() end,
  name10 = function() return "/fhir/Patient?name=" .. family() .. "&_count=10" end,
  birthdate = function() return "/fhir/Patient?birthdate=ge" .. math.random(1930, 2019) .. "-01-01" end,
  patient_code = function() return "/fhir/Observation?patient=" .. patient() .. "&code=http://loinc.org|" .. code() .. "&_sort=-date" end,
  code_value = function() return "/fhir/Observation?code=" .. code() .. "&value-quantity=gt" .. math.random(50, 150) end,
  chained = function() return "/fhir/Encounter?patient.name=" .. family() end,
  include = function() return "/fhir/Observation?patient=" .. patient() .. "&_include=Observation:patient" end,
  revinclude = function() return "/fhir/Patient?_id=" .. patient() .. "&_revinclude=Observation:patient" end,
  total = function() return "/fhir/Observation?code=" .. code() .. "&_total=accurate&_count=10" end,
}

request = function()
  return wrk.format("GET", builders[query]())
end
