#!/usr/bin/env python3
"""Checks a Compose file against the Compose Specification's JSON schema, offline.

The schema is the Compose Specification's `compose_spec.json` as PyPI's
docker-compose 1.29.2 ships it, read straight out of that wheel, which .ci/run
downloads without installing it (no Docker, no network at check time):

    python3 -m pip download --no-deps docker-compose==1.29.2 -d target/compose-spec
    python3 deploy/compose_check.py target/compose-spec/docker_compose-1.29.2-py2.py3-none-any.whl compose.yaml

Prints "valid" and exits 0, or prints each error (where: what) and exits 1.
Needs PyYAML and jsonschema (pip install pyyaml jsonschema).
"""

import json
import sys
import zipfile

import jsonschema
import yaml

SCHEMA = "compose/config/compose_spec.json"


def main(wheel, path):
    with zipfile.ZipFile(wheel) as z:
        schema = json.loads(z.read(SCHEMA))
    with open(path, encoding="utf-8") as f:
        document = yaml.safe_load(f)
    # The file names draft 2019-09 by a URL jsonschema does not recognise.
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    for e in errors:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        print(f"{path}: {where}: {e.message}")
    if errors:
        return 1
    print(f"{path}: valid against the Compose Specification ({SCHEMA} of {wheel.rsplit('/', 1)[-1]})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compose_check.py DOCKER_COMPOSE_WHEEL COMPOSE_FILE")
    sys.exit(main(sys.argv[1], sys.argv[2]))
