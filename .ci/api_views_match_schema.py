"""Every block of a live node, and an account, checked against the node's
own OpenAPI document: schemathesis rarely reaches a block with transactions,
so this walks the whole chain. Usage: api_views_match_schema.py API ADDRESS"""

import json
import sys
import urllib.request

import jsonschema_rs

api, address = sys.argv[1], sys.argv[2]


def get(path):
    with urllib.request.urlopen(f"http://{api}{path}", timeout=10) as response:
        return json.load(response)


doc = get("/openapi.json")


def validator(name):
    return jsonschema_rs.validator_for(
        {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    )


blocks, account = validator("BlockView"), validator("Account")
kinds = set()
head = get("/status")["height"]
for height in range(head + 1):
    block = get(f"/blocks/{height}")
    blocks.validate(block)
    kinds.update(tx["kind"] for tx in block["txs"])
account.validate(get(f"/accounts/{address}"))
missing = {"transfer", "stake", "unstake"} - kinds
if missing:
    sys.exit(f"no block with a {', '.join(sorted(missing))} transaction among {head + 1}")
print(f"{head + 1} blocks and an account match the schema (transaction kinds: {', '.join(sorted(kinds))})")
