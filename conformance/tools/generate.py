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
print(len(types), "resource types,", len(params), "search parameters")
