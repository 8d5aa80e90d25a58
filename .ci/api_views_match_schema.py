"""Every block of a live node, and an account, checked against the node's
own OpenAPI document: schemathesis rarely reaches a block with transactions,
so this walks the whole chain, asking GET /txs/{id} of every transaction
in it, and checks an account's history and the explorer's overview views. Usage: api_views_match_schema.py API ADDRESS"""

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
tx_status = validator("TxStatus")
kinds = set()
head = get("/status")["height"]
for height in range(head + 1):
    block = get(f"/blocks/{height}")
    blocks.validate(block)
    kinds.update(tx["kind"] for tx in block["txs"])
    for tx in block["txs"]:
        status = get(f"/txs/{tx['id']}")
        tx_status.validate(status)
        # One node, no forks: each transaction is where its block is.
        if (status["status"], status.get("height"), status.get("block")) != ("included", height, block["id"]):
            sys.exit(f"tx {tx['id']} of block {height} has the status {status}")
account.validate(get(f"/accounts/{address}"))
history = get(f"/accounts/{address}/txs?limit=100")
validator("AccountTxs").validate(history)
if not history["txs"]:
    sys.exit(f"{address} has transactions on the chain but an empty history")
for path, name in [("/blocks?limit=100", "BlockList"), ("/proposers", "Proposers"),
                   ("/peers", "Peers"), ("/reorgs", "Reorgs")]:
    validator(name).validate(get(path))
missing = {"transfer", "stake", "unstake"} - kinds
if missing:
    sys.exit(f"no block with a {', '.join(sorted(missing))} transaction among {head + 1}")
print(f"{head + 1} blocks, their transactions' status, an account, its history and the overview views match the schema (transaction kinds: {', '.join(sorted(kinds))})")
