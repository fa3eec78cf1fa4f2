#!/usr/bin/env python3
"""Recomputes a channel handshake from docs/protocol/channel.md alone (Python
stdlib, no code shared with the Rust crate) and checks it against a transcript
dumped by the Rust test `deterministic_transcript_dump`:

    cargo test -p channel deterministic_transcript_dump -- --nocapture \
        | grep -E '^[a-z0-9]+ [0-9a-f]+$' > crates/channel/testdata/transcript.txt
    python3 crates/channel/testdata/independent_check.py crates/channel/testdata/transcript.txt
"""
import hashlib, hmac, sys

N = int(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a0879"
    "8e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b"
    "0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da4836"
    "1c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804"
    "f1746c08ca18217c32905e462e36ce3be39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6"
    "955817183995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33a85521abdf1cba64"
    "ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7abf5ae8cdb0933d71e8c94e04a25619dcee3d226"
    "1ad2ee6bf12ffa06d98a0864d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e2"
    "08e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff", 16)
g = 5
L = 384
H = lambda *parts: hashlib.sha256(b"".join(parts)).digest()
pad = lambda n: n.to_bytes(L, "big")
minimal = lambda n: n.to_bytes((n.bit_length() + 7) // 8, "big")

t = dict(line.split() for line in open(sys.argv[1]))
t = {k: bytes.fromhex(v) for k, v in t.items()}
P, I, a, b = t["password"], t["folder"], t["a"], t["b"]
ch, sh, ma, mb, m1, m2 = (t[k] for k in ["ch", "sh", "ma", "mb", "m1", "m2"])

# Hellos: magic, versions, folder id, peer id, nonce, extensions.
for hello in (ch, sh):
    assert hello[:8] == b"SWSYNC\r\n" and hello[8:12] == b"\x00\x01\x00\x01"
    assert hello[12:32] == I and hello[96:98] == b"\x00\x00" and len(hello) == 98
assert ch[32:64] < sh[32:64], "the lower peer id is the SRP client"

def body(frame, kind):
    assert frame[0] == kind and int.from_bytes(frame[1:3], "big") == len(frame) - 3
    return frame[3:]

s = H(b"swarmsync v1 srp salt", I)
x = int.from_bytes(H(s, H(I, b":", P)), "big")
v = pow(g, x, N)
k = int.from_bytes(H(pad(N), pad(g)), "big")
ai, bi = int.from_bytes(a, "big"), int.from_bytes(b, "big")
A, B = pow(g, ai, N), (k * v + pow(g, bi, N)) % N
assert body(ma, 0x01) == minimal(A), "A"
assert body(mb, 0x02) == minimal(B), "B"
u = int.from_bytes(H(pad(A), pad(B)), "big")
S_client = pow((B - k * pow(g, x, N)) % N, ai + u * x, N)
S_server = pow(A * pow(v, u, N) % N, bi, N)
assert S_client == S_server
K = H(minimal(S_client))
hn_xor_hg = bytes(p ^ q for p, q in zip(H(pad(N)), H(pad(g))))
M1 = H(hn_xor_hg, H(I), s, minimal(A), minimal(B), K)
M2 = H(minimal(A), M1, K)
assert body(m1, 0x03) == M1, "M1"
assert body(m2, 0x04) == M2, "M2"
th = H(ch, sh, ma, mb, m1, m2)
assert th == t["th"], "transcript hash"
prk = hmac.new(th, K, hashlib.sha256).digest()
c2s = hmac.new(prk, b"swarmsync v1 c2s traffic\x01", hashlib.sha256).digest()
print("ok: A, B, M1, M2 and the transcript hash match; c2s traffic secret", c2s.hex())
