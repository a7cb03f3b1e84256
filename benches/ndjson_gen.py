"""Writes a Bulk Data style NDJSON export for `hearth import` benchmarks: PATIENTS Patients, each
with OBS Observations (vital signs referring to it), one resource a line, with ids."""
import json, os, random, sys

out, patients, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(7)
os.makedirs(out, exist_ok=True)
codes = [("8867-4", "Heart rate", "/min"), ("8310-5", "Body temperature", "Cel"), ("9279-1", "Respiratory rate", "/min"), ("29463-7", "Body weight", "kg")]
with open(os.path.join(out, "Patient.ndjson"), "w") as p, open(os.path.join(out, "Observation.ndjson"), "w") as o:
    for n in range(patients):
        pid = f"p{n}"
        p.write(json.dumps({"resourceType": "Patient", "id": pid,
            "identifier": [{"system": "urn:bench:mrn", "value": f"mrn-{n}"}],
            "name": [{"family": random.choice(["Okafor", "Smith", "Nguyen", "Patel", "Jones"]) + str(n % 97), "given": ["Sam"]}],
            "gender": random.choice(["male", "female"]), "birthDate": f"{random.randint(1930, 2020)}-0{random.randint(1, 9)}-1{random.randint(0, 9)}"}) + "\n")
        for k in range(per):
            code, display, unit = codes[k % len(codes)]
            o.write(json.dumps({"resourceType": "Observation", "id": f"o{n}-{k}", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": f"2026-0{1 + k % 9}-1{k % 10}T08:00:00Z",
                "valueQuantity": {"value": round(random.uniform(30, 120), 1), "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}) + "\n")
