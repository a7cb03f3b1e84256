-- POST a Patient (server-assigned id).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.body = io.open(os.getenv("BODY")):read("*a")
