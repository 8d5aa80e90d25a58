# Reference values for chain/src/draw.rs: x and floor(-ln((x+1)/2^128) * 2^64),
# computed with Python's decimal module at 60 significant digits.
# Run: python3 chain/tests/vectors/neg_ln.py > chain/tests/vectors/neg_ln.txt
import random
from decimal import Decimal, getcontext

getcontext().prec = 60
TWO128 = Decimal(2) ** 128
TWO64 = Decimal(2) ** 64

xs = [0, 1, 2, 3, 2**64 - 1, 2**64, 2**127 - 1, 2**127, 2**128 - 2, 2**100, 2**100 - 1, 3 * 2**125, 10**30]
xs += [2**k - 1 for k in range(1, 128, 9)]
rng = random.Random(2026)
xs += [rng.getrandbits(128) for _ in range(30)]
xs += [rng.getrandbits(rng.randrange(1, 129)) for _ in range(20)]

print("# x floor(-ln((x+1)/2^128) * 2^64)")
for x in xs:
    u = (Decimal(x) + 1) / TWO128
    v = -u.ln() * TWO64
    print(x, int(v))
