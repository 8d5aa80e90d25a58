#!/usr/bin/env python3
"""Seed corpora for the fuzz targets from the golden vectors
(chain/tests/vectors/golden.txt, keystore/tests/vectors/keystore.json) and
the testnet specs: fuzz/corpus/<target>/."""
import json
import pathlib
import struct

here = pathlib.Path(__file__).resolve().parent
root = here.parent
golden = {}
for line in (root / "chain/tests/vectors/golden.txt").read_text().splitlines():
    if line.strip() and not line.startswith("#"):
        name, value = line.split(maxsplit=1)
        golden[name] = bytes.fromhex(value.strip())
txs = [v for k, v in golden.items() if k.startswith("tx_")]
block = golden["block"]
# Passphrase "fuzz", argon2 costs cheap enough for the target to decrypt.
keystore = json.loads((root / "keystore/tests/vectors/keystore.json").read_text())
bound = dict(keystore, chain={"chain_id": "klero-pos-dev", "genesis": "ab" * 32})


def u32(n):
    return struct.pack("<I", n)


def u64(n):
    return struct.pack("<Q", n)


seeds = {
    "block": [block],
    "header": [golden["header_pow"], golden["header_pos"]],
    "tx": txs,
    "tx_hex": [t.hex().encode() for t in txs],
    "sync_request": [u32(0), u32(1) + u64(1) + u32(64), u32(2) + u64(1) + u32(512)],
    "sync_response": [
        u32(0) + u64(7) + bytes(32) + bytes(range(32)),
        u32(1) + u64(1) + u64(len(block)) + block,
        u32(2),
        # Headers: one signed header (a golden header and a 64-byte signature).
        u32(3) + u64(1) + golden["header_pow"] + bytes(64),
    ],
    "spec_toml": [(root / f"testnet/{k}.toml").read_bytes() for k in ("pos", "pow")],
    "validate_block": [b"\x00" + block, b"\x01" + block],
    "keystore_json": [json.dumps(k, indent=2).encode() for k in (keystore, bound)],
}
for target, items in seeds.items():
    out = here / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    for i, item in enumerate(items):
        (out / f"seed-{i}").write_bytes(item)
