#!/usr/bin/env python3
# The chaos harness's delay (this kernel has no tc netem): run inside a node's network namespace, it takes the node's
# outgoing packets to its peers through a tun device (routes: each peer's /32 via the tun), holds each for the delay
# (plus jitter), and sends it on eth0 through a raw socket bound there. Incoming packets are not touched, so a
# round trip grows by the delay. It prints "ready" once the routes are in place; killing it removes the tun and
# with it the routes. Usage: delay-relay.py DELAY_MS JITTER_MS SRC_IP PEER_IP...
import fcntl, heapq, os, random, select, socket, struct, subprocess, sys, time

delay, jitter, src, peers = float(sys.argv[1]) / 1000, float(sys.argv[2]) / 1000, sys.argv[3], sys.argv[4:]
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', b'chaosdelay', IFF_TUN | IFF_NO_PI))
subprocess.run(['ip', 'link', 'set', 'chaosdelay', 'up', 'mtu', '1500'], check=True)
for p in peers:
    subprocess.run(['ip', 'route', 'replace', f'{p}/32', 'dev', 'chaosdelay', 'src', src], check=True)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'eth0')
print('ready', flush=True)
q, seq = [], 0
while True:
    now = time.monotonic()
    r, _, _ = select.select([fd], [], [], max(0.0, q[0][0] - now) if q else None)
    if r:
        pkt = os.read(fd, 65535)
        if len(pkt) >= 20 and pkt[0] >> 4 == 4:
            seq += 1
            heapq.heappush(q, (time.monotonic() + delay + random.uniform(0, jitter), seq, pkt))
    now = time.monotonic()
    while q and q[0][0] <= now:
        _, _, pkt = heapq.heappop(q)
        try:
            raw.sendto(pkt, (socket.inet_ntoa(pkt[16:20]), 0))
        except OSError:
            pass
