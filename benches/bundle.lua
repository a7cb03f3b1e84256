-- POST a transaction Bundle (BODY) to the FHIR base, answers minimal; prints how many
-- answers were not 2xx/3xx.
-- Every FHIR request needs a token: TOKEN comes from `hearth token` (see the scripts).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.headers["Prefer"] = "return=minimal"
wrk.body = io.open(os.getenv("BODY")):read("*a")
done = function(summary, latency, requests)
  io.write(string.format("failed answers %d\n", summary.errors.status))
end
