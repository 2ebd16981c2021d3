#!/usr/bin/env python3
"""Turns a loopback capture (pcap, Ethernet framing as Linux gives for lo) into seed files for
every fuzz target; see seed.sh. Usage: seed_extract.py CAPTURE.pcap CORPUS_DIR SERVER_PORT"""
import hashlib
import os
import struct
import sys

capture, corpus, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
SERVER = {(ip, p) for ip in ("127.0.0.1", "127.0.0.2") for p in (port, port + 1)}
# The fuzz targets' server addresses, in FullMode::addresses order: (ip1,p1) (ip1,p2) (ip2,p1) (ip2,p2).
LOCAL_INDEX = {("127.0.0.1", port): 0, ("127.0.0.1", port + 1): 1,
               ("127.0.0.2", port): 2, ("127.0.0.2", port + 1): 3}
OWN_NONCE = bytes.fromhex("0102030405060708")  # fuzz_targets/punch_data.rs
MAX_OPS = 48
# Seeds per target from one capture: enough variety, small enough to commit.
MAX_SEEDS = 24


def packets(path):
    data = open(path, "rb").read()
    magic, = struct.unpack("<I", data[:4])
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype, = struct.unpack(endian + "I", data[20:24])
    at = 24
    while at + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + incl]
        at += 16 + incl
        if linktype == 1:
            ethertype = struct.unpack(">H", frame[12:14])[0]
            ip = frame[14:]
        elif linktype == 113:  # Linux cooked
            ethertype = struct.unpack(">H", frame[14:16])[0]
            ip = frame[16:]
        else:
            raise SystemExit(f"unexpected link type {linktype}")
        yield sec + frac / 1e6, ethertype, ip


def parse(ip):
    version = ip[0] >> 4
    if version == 4:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        proto, ttl = ip[9], ip[8]
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        body, raw = ip[ihl:total], ip[:total]
    elif version == 6:
        proto, ttl = ip[6], ip[7]
        total = 40 + struct.unpack(">H", ip[4:6])[0]
        src, dst = ip[8:24].hex(), ip[24:40].hex()
        body, raw = ip[40:total], ip[:total]
    else:
        return None
    if proto == 17:
        sport, dport = struct.unpack(">HH", body[:4])
        return ("udp", (src, sport), (dst, dport), body[8:], 0, ttl, raw)
    if proto == 6:
        sport, dport = struct.unpack(">HH", body[:4])
        offset = (body[12] >> 4) * 4
        return ("tcp", (src, sport), (dst, dport), body[offset:], body[13], ttl, raw)
    return None


def op(code, selector, payload=b""):
    return bytes([code, selector & 0xFF]) + struct.pack(">H", len(payload)) + payload


def stun_frames(stream):
    """Cuts a TCP byte stream into STUN frames (RFC 8489 section 6.2.2)."""
    frames, at = [], 0
    while at + 20 <= len(stream) and stream[at] & 0xC0 == 0:
        length = 20 + struct.unpack(">H", stream[at + 2:at + 4])[0]
        if at + length > len(stream):
            break
        frames.append(stream[at:at + length])
        at += length
    return frames


written = {}


def write(target, name, data):
    if not data:
        return
    directory = os.path.join(corpus, target)
    os.makedirs(directory, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:10]
    if digest in written.setdefault(target, set()) or len(written[target]) >= MAX_SEEDS:
        return
    written[target].add(digest)
    with open(os.path.join(directory, f"cap-{name}-{digest}"), "wb") as out:
        out.write(data)


records = [(t, p) for t, _, ip in packets(capture) if (p := parse(ip))]
udp = [(t, p) for t, p in records if p[0] == "udp"]
tcp = [(t, p) for t, p in records if p[0] == "tcp"]

# Per-direction TCP streams (payload in order; loopback does not reorder).
streams = {}
for t, (_, src, dst, payload, flags, ttl, raw) in tcp:
    if payload and (src in SERVER or dst in SERVER):
        streams.setdefault((src, dst), bytearray()).extend(payload)

# stun_message: every distinct STUN datagram and TCP frame, a few per (type, length) shape.
shapes = {}
messages = [p[3] for _, p in udp if p[3] and p[3][0] & 0xC0 == 0]
messages += [f for s in streams.values() for f in stun_frames(bytes(s))]
for message in messages:
    shape = (message[:2], len(message))
    shapes[shape] = shapes.get(shape, 0) + 1
    if shapes[shape] <= 2:
        write("stun_message", "msg", message)

# tcp_framing: each stream whole, and cut into small chunks.
for (src, dst), stream in streams.items():
    write("tcp_framing", "whole", b"\x00" + bytes(stream[:4096]))
    write("tcp_framing", "chunked", b"\x05" + bytes([1, 7, 19, 20, 63]) + bytes(stream[:4096]))

# server_core: the traffic to the server in time order, one seed per run of MAX_OPS operations.
clients = {}
ops, last = [], None
tcp_conns = {}
for t, (kind, src, dst, payload, flags, ttl, raw) in sorted(records, key=lambda r: r[0]):
    if dst not in SERVER or not payload:
        continue
    if last is not None and t - last > 0.25:
        ops.append(op(2, min(255, int((t - last) / 0.25))))
    last = t
    remote = clients.setdefault(src, len(clients)) % 4
    if kind == "udp":
        ops.append(op(0, LOCAL_INDEX[dst] * 4 + remote, payload))
    else:
        conn = tcp_conns.setdefault(src, len(tcp_conns)) % 3
        ops.append(op(1, conn, payload))
for start in range(0, len(ops), MAX_OPS):
    write("server_core", "session", b"".join(ops[start:start + MAX_OPS]))
# And each client's own exchange, from its first message.
per_client = {}
for t, (kind, src, dst, payload, flags, ttl, raw) in records:
    if dst in SERVER and payload:
        remote = clients[src] % 4
        code, selector = (0, LOCAL_INDEX[dst] * 4 + remote) if kind == "udp" else (1, 0)
        per_client.setdefault(src, []).append(op(code, selector, payload))
for ops in per_client.values():
    write("server_core", "client", b"".join(ops[:MAX_OPS]))

# client_session: what the server sent each client, as datagrams or frames.
to_client = {}
for t, (kind, src, dst, payload, flags, ttl, raw) in records:
    if src in SERVER and payload:
        to_client.setdefault((kind, dst), []).append(payload)
for (kind, client), payloads in to_client.items():
    if kind == "udp":
        data = b"\x00" + b"".join(op(0, 0, p) + op(1, 2) for p in payloads[:MAX_OPS])
    else:
        frames = stun_frames(b"".join(payloads))
        data = b"\x01" + b"".join(op(0, 0, f) + op(1, 2) for f in frames[:MAX_OPS])
    write("client_session", kind, data)

# punch_data: PUNCH probes and echoes, DATA frames readdressed to the target's nonce.
# One seed per direction of each flow, from its first datagrams (a fan-out sends thousands).
flows = {}
for t, (kind, src, dst, payload, flags, ttl, raw) in udp:
    if src in SERVER or dst in SERVER or not payload:
        continue
    ops = flows.setdefault((src, dst), [])
    if len(ops) >= 16:
        continue
    if payload[0] == 0xEA and len(payload) >= 14:
        ops.append(op(0, 0, payload[:2] + OWN_NONCE + payload[10:]))
    elif payload[0] & 0xC0 == 0:
        ops.append(op(1, 0, payload))
    ops.append(op(2, 1))
# Flows that carried DATA first: they are the ones that got through.
for ops in sorted(flows.values(), key=lambda o: -sum(x[0] == 0 for x in o)):
    write("punch_data", "punch", b"".join(ops))

# tcp_syn: the crafted segments (low TTL / hop limit) as the raw socket sees them.
kinds = {}
for t, (kind, src, dst, payload, flags, ttl, raw) in tcp:
    # Crafted low-TTL SYNs, and the SYN / SYN-ACK / RST of the simultaneous open (on loopback
    # natlens's TCP punch also connects from the kernel's stack, with TTL 64).
    if ttl < 32 or flags & 0x06:
        key = (raw[0] >> 4, flags)
        kinds[key] = kinds.get(key, 0) + 1
        if kinds[key] <= 2:
            write("tcp_syn", "raw", raw)

for target in sorted(written):
    print(f"{target}: {len(written[target])} capture seeds")
