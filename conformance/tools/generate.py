#!/usr/bin/env python3
"""Regenerates the vendored R4 data in conformance/ from the CC0 npm package
hl7.fhir.r4.examples@4.0.1 (run: npm pack hl7.fhir.r4.examples@4.0.1 && tar xzf ...).

Usage: python3 conformance/tools/generate.py PATH/TO/package
"""
import json
import os
import sys

pkg = sys.argv[1]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

types = {}
for name in sorted(os.listdir(pkg)):
    if not name.startswith("StructureDefinition-"):
        continue
    sd = json.load(open(os.path.join(pkg, name)))
    if sd.get("kind") != "resource" or sd.get("derivation") != "specialization" or sd.get("abstract"):
        continue
    t = sd["type"]
    summary, required = [], []
    for el in sd["snapshot"]["element"]:
        parts = el["path"].split(".")
        if len(parts) != 2:
            continue
        if el.get("isSummary"):
            summary.append(parts[1])
        if el.get("min", 0) > 0:
            required.append(parts[1])
    types[t] = {"summary": summary, "required": required}

with open(os.path.join(out, "r4-resource-types.json"), "w") as f:
    json.dump(types, f, indent=1, sort_keys=True)
    f.write("\n")

# Element types of every resource, complex datatype and backbone element, for the primitive
# checks: {"Patient": {"birthDate": "date", "contact": "Patient.contact", "deceasedBoolean":
# "boolean", ...}}. Backbone elements are named by their path; contentReference is followed.
elements = {}
for name in sorted(os.listdir(pkg)):
    if not name.startswith("StructureDefinition-"):
        continue
    sd = json.load(open(os.path.join(pkg, name)))
    if sd.get("derivation") != "specialization" or sd.get("abstract"):
        continue
    if sd.get("kind") not in ("resource", "complex-type"):
        continue
    snapshot = sd["snapshot"]["element"]
    paths = {e["path"] for e in snapshot}
    for el in snapshot:
        parts = el["path"].split(".")
        if len(parts) < 2:
            continue
        owner, leaf = ".".join(parts[:-1]), parts[-1]
        owner = sd["type"] if len(parts) == 2 else sd["type"] + "." + ".".join(parts[1:-1])
        table = elements.setdefault(owner, {})
        if "contentReference" in el:
            table[leaf] = el["contentReference"].lstrip("#")
            continue
        codes = [t["code"] for t in el.get("type", [])]
        if leaf.endswith("[x]"):
            stem = leaf[:-3]
            for c in codes:
                table[stem + c[0].upper() + c[1:]] = c
            continue
        if not codes:
            continue
        code = codes[0]
        if code.startswith("http://hl7.org/fhirpath/System."):
            code = "string"
        if code in ("BackboneElement", "Element") and any(p.startswith(el["path"] + ".") for p in paths):
            code = el["path"]
        table[leaf] = code
with open(os.path.join(out, "r4-elements.json"), "w") as f:
    json.dump(elements, f, separators=(",", ":"), sort_keys=True)
    f.write("\n")

# Search parameters, trimmed to what the search engine reads.
keep = ["url", "name", "code", "base", "type", "expression", "target", "modifier",
        "comparator", "multipleOr", "multipleAnd", "chain", "component"]
bundle = json.load(open(os.path.join(pkg, "Bundle-searchParams.json")))
params = []
for e in bundle["entry"]:
    r = e["resource"]
    if r["resourceType"] != "SearchParameter":
        continue
    params.append({k: r[k] for k in keep if k in r})
with open(os.path.join(out, "r4-search-parameters.json"), "w") as f:
    json.dump({"resourceType": "Bundle", "type": "collection",
               "entry": [{"resource": dict(resourceType="SearchParameter", **p)} for p in params]},
              f, indent=0)
    f.write("\n")
# Compartments: {"Patient": {"Observation": ["subject", "performer"], ...}, ...}; a resource type
# with no parameter is not in the compartment.
compartments = {}
for name in sorted(os.listdir(pkg)):
    if not name.startswith("CompartmentDefinition-") or name == "CompartmentDefinition-example.json":
        continue
    cd = json.load(open(os.path.join(pkg, name)))
    compartments[cd["code"]] = {r["code"]: r["param"] for r in cd["resource"] if r.get("param")}
with open(os.path.join(out, "r4-compartments.json"), "w") as f:
    json.dump(compartments, f, indent=1, sort_keys=True)
    f.write("\n")
print(len(types), "resource types,", len(params), "search parameters")
