#!/usr/bin/env bash
# Captures real traffic on loopback and turns it into the committed seed corpora
# (fuzz/corpus/<target>/cap-*). Rerun after a protocol change:
#
#   fuzz/seed.sh [path/to/natlens]     # default: $CARGO_TARGET_DIR/debug/natlens or target/debug
#
# A natlens server runs in RFC 5780 full mode on 127.0.0.1:P / 127.0.0.2:P+1 (free ports), and
# tshark captures on lo while these talk to it: Debian's `stun` (RFC 3489), coturn's
# `turnutils_stunclient` and `turnutils_natdiscovery -m -f`, `natlens nat` (UDP and TCP),
# `natlens login` over UDP and TCP, and `natlens listen` + `natlens call` (a UDP punch with data,
# then a TCP punch with crafted SYNs). Needs root (tshark on lo, raw SYNs) and every packet stays
# on loopback. The capture filter keeps the server's ports and addresses, natlens's PUNCH and
# DATA datagrams (recognised by content: their ports are ephemeral) and the crafted low-TTL TCP
# segments; fuzz/seed_extract.py writes one seed per target from it. Builder-made seeds
# (tcp_syn, and punch-path inputs carrying the fuzz target's own nonces) come from
# `cargo run --example seed_builders`.
set -euo pipefail
cd "$(dirname "$0")"
NATLENS=${1:-${CARGO_TARGET_DIR:-../target}/debug/natlens}
[ -x "$NATLENS" ] || { echo "no natlens binary at $NATLENS (cargo build first)" >&2; exit 1; }
# Capture and client outputs stay in logs/seed (not committed) for a look afterwards.
WORK=logs/seed
rm -rf "$WORK" && mkdir -p "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket
while True:
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close()
    if p < 65000:
        try:
            for fam,typ in ((socket.AF_INET,socket.SOCK_DGRAM),(socket.AF_INET,socket.SOCK_STREAM)):
                for q in (p,p+1):
                    t=socket.socket(fam,typ); t.bind(("127.0.0.1",q)); t.close()
            print(p); break
        except OSError: pass'
}
P=$(free_port)
A=$((P + 1))
S=$(free_port)
FILTER="host 127.0.0.2 or port $P or port $A or port $S or port $((S + 1))"
FILTER="$FILTER or (udp and (udp[8] = 0xea or udp[12:4] = 0x2112a442)) or (tcp and ip[8] < 32)"
FILTER="$FILTER or (ip6 and tcp and ip6[7] < 32)"

tshark -i lo -f "$FILTER" -F pcap -w "$WORK/capture.pcap" -q 2>"$WORK/tshark.log" &
PIDS+=($!)
sleep 3

"$NATLENS" server --quiet --listen "127.0.0.1:$P" --alternate "127.0.0.2:$A" &
PIDS+=($!)
sleep 1
SERVER="127.0.0.1:$P"
run() { echo "+ $*"; timeout 40 "$@" >"$WORK/out.txt" 2>&1 || echo "  (exit $?)"; }

run stun "$SERVER" -v -p "$S" -i 127.0.0.1
run turnutils_stunclient -p "$P" 127.0.0.1
run turnutils_natdiscovery -m -f -L 127.0.0.1 -p "$P" 127.0.0.1
run "$NATLENS" nat --server "$SERVER" --transport both --samples 4
run "$NATLENS" login --server "$SERVER" --id carol --duration 2s
run "$NATLENS" login --server "$SERVER" --id dave --transport tcp --duration 2s

for transport in udp tcp; do
    echo "+ natlens listen/call --transport $transport"
    echo "hello from bob" | timeout 40 "$NATLENS" listen --server "$SERVER" --id "bob-$transport" \
        --transport "$transport" >"$WORK/listen-$transport.txt" 2>&1 &
    listener=$!
    PIDS+=($listener)
    sleep 3
    echo "hello from alice" | timeout 40 "$NATLENS" call "bob-$transport" --server "$SERVER" \
        --id "alice-$transport" --transport "$transport" >"$WORK/call-$transport.txt" 2>&1 \
        || echo "  (call exit $?: $(tail -1 "$WORK/call-$transport.txt"))"
    sleep 1
    kill "$listener" 2>/dev/null || true
done

sleep 2
kill "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null || true
python3 seed_extract.py "$WORK/capture.pcap" corpus "$P"
