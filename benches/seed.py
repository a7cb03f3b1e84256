#!/usr/bin/env python3
"""Seeds Patient/p1 … Patient/pN by PUT (update-as-create) over 8 keep-alive connections.

Usage: TOKEN=… seed.py HOST:PORT N BODY_FILE
"""
import http.client
import json
import os
import sys
import threading

host, n, body_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
template = json.load(open(body_file))
failures = []


def seed(start, step):
    conn = http.client.HTTPConnection(host)
    for i in range(start, n + 1, step):
        template_copy = dict(template, id=f"p{i}")
        conn.request("PUT", f"/fhir/Patient/p{i}", json.dumps(template_copy),
                     {"Content-Type": "application/fhir+json",
                      "Authorization": f"Bearer {os.environ['TOKEN']}"})
        response = conn.getresponse()
        response.read()
        if response.status not in (200, 201):
            failures.append((i, response.status))
            return


threads = [threading.Thread(target=seed, args=(k + 1, 8)) for k in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if failures:
    sys.exit(f"seeding failed: {failures[:5]}")
