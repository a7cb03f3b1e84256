#!/usr/bin/env python3
"""What the size of an index entry costs a SQLite writer: the Patient's 12 token rows of
benches/patient.json written 10 resources to a durable commit (WAL, synchronous=FULL), into a
token table keyed by its owner and its lookup index, as Hearth lays them out, in three shapes:

  text    the owner as its type and 36-character id, the system as text (Hearth today)
  intkey  the owner as an integer key
  intall  the owner, the parameter and the system as integers

Prints resources a second and WAL frames a commit (checkpoints off, so every frame stays).

    python3 benches/index_keys.py text intkey intall intall intkey text
"""
import os
import sqlite3
import sys
import tempfile
import time
import uuid

TOKENS = [
    ("active", "", "true"),
    ("address-use", "", "home"),
    ("deceased", "", "false"),
    ("gender", "", "male"),
    ("identifier", "urn:oid:1.2.36.146.595.217.0.1", "12345"),
    ("identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203", "MR|12345"),
    ("phone", "phone", "(03) 5555 6473"),
    ("phone", "phone", "(03) 3410 5613"),
    ("phone", "phone", "(03) 5555 8834"),
    ("telecom", "phone", "(03) 5555 6473"),
    ("telecom", "phone", "(03) 3410 5613"),
    ("telecom", "phone", "(03) 5555 8834"),
]

SCHEMAS = {
    "text": [
        "CREATE TABLE t (resource_type TEXT NOT NULL, resource_id TEXT NOT NULL, code TEXT NOT NULL, ord INTEGER NOT NULL, system TEXT, value TEXT, PRIMARY KEY (resource_type, resource_id, code, ord)) WITHOUT ROWID",
        "CREATE INDEX t_lookup ON t (resource_type, code, value, system, resource_id)",
    ],
    "intkey": [
        "CREATE TABLE t (resource_type TEXT NOT NULL, resource_key INTEGER NOT NULL, code TEXT NOT NULL, ord INTEGER NOT NULL, system TEXT, value TEXT, PRIMARY KEY (resource_key, code, ord)) WITHOUT ROWID",
        "CREATE INDEX t_lookup ON t (resource_type, code, value, system, resource_key)",
    ],
    "intall": [
        "CREATE TABLE t (resource_key INTEGER NOT NULL, code INTEGER NOT NULL, ord INTEGER NOT NULL, system INTEGER, value TEXT, PRIMARY KEY (resource_key, code, ord)) WITHOUT ROWID",
        "CREATE INDEX t_lookup ON t (code, value, system, resource_key)",
    ],
}


def run(kind, folder, commits=3000, per=10):
    path = os.path.join(folder, f"{kind}.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    for statement in SCHEMAS[kind]:
        db.execute(statement)
    codes, systems = {}, {}
    n = 0
    start = time.perf_counter()
    for _ in range(commits):
        rows = []
        for _ in range(per):
            n += 1
            # 36 characters in creation order, as Hearth's UUID v7 ids are.
            rid = str(uuid.UUID(int=n))
            for i, (code, system, value) in enumerate(TOKENS):
                if kind == "text":
                    rows.append(("Patient", rid, code, i, system, value))
                elif kind == "intkey":
                    rows.append(("Patient", n, code, i, system, value))
                else:
                    code_key = codes.setdefault(code, len(codes))
                    system_key = systems.setdefault(system, len(systems))
                    rows.append((n, code_key, i, system_key, value))
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO t VALUES ({','.join('?' * len(rows[0]))})", rows)
        db.execute("COMMIT")
    seconds = time.perf_counter() - start
    frames = (os.path.getsize(path + "-wal") - 32) // (4096 + 24)
    print(f"{kind:7s} {n / seconds:8,.0f} resources/s  {frames / commits:5.1f} WAL frames a commit")
    db.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        for kind in sys.argv[1:] or ["text", "intkey", "intall"]:
            run(kind, folder)
