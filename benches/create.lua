-- POST a Patient (server-assigned id).
-- Every FHIR request needs a token: TOKEN comes from `hearth token` (see the scripts).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.body = io.open(os.getenv("BODY")):read("*a")
