#!/usr/bin/env python3
"""HLS listeners for benches/hls-listeners.sh, as players behave: each listener keeps one
HTTP/1.1 connection, fetches the playlist every target duration (2 s, at a random phase),
the init segment once, then every segment it has not fetched yet (starting three behind the
live edge). Bounded: SECONDS of load, then a JSON summary on stdout.

    hls_load.py HOST PORT PLAYLIST_PATH LISTENERS SECONDS [SOURCE_IPS]

SOURCE_IPS: comma-separated loopback addresses the listeners connect from (a server caps
connections per address; real listeners come from many)."""
import asyncio
import json
import random
import sys
import time


async def get(reader, writer, host, path):
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hls-load\r\n\r\n".encode())
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    code = int(status.split()[1]) if status else 0
    length = 0
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
    body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
    return code, body


async def listener(i, host, port, playlist, until, source, stats):
    base = playlist[: playlist.rindex("/") + 1]
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0) if source else None)
    except OSError:
        stats["connect_errors"] += 1
        return
    fetched = -1
    await asyncio.sleep(random.random() * 2)
    try:
        while time.monotonic() < until:
            started = time.monotonic()
            code, body = await get(reader, writer, host, f"{playlist}?l=b{i}")
            stats["requests"] += 1
            stats["bytes"] += len(body)
            if code != 200:
                stats["errors"] += 1
            else:
                lines = body.decode().splitlines()
                first = next((int(l.split(":")[1]) for l in lines if l.startswith("#EXT-X-MEDIA-SEQUENCE:")), 1)
                names = [l for l in lines if l.endswith(".m4s")]
                if fetched < 0:
                    code, body = await get(reader, writer, host, base + "init.mp4")
                    stats["requests"] += 1
                    stats["bytes"] += len(body)
                    fetched = first + len(names) - 4
                for k, name in enumerate(names):
                    if first + k <= fetched:
                        continue
                    code, body = await get(reader, writer, host, base + name)
                    stats["requests"] += 1
                    stats["segments"] += 1
                    stats["bytes"] += len(body)
                    if code != 200:
                        stats["errors"] += 1
                    fetched = first + k
            stats["latency"].append(time.monotonic() - started)
            await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
        stats["errors"] += 1
    finally:
        writer.close()


async def main():
    host, port, playlist, n, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    sources = sys.argv[6].split(",") if len(sys.argv) > 6 and sys.argv[6] else [None]
    assert 1 <= n <= 10000 and 1 <= seconds <= 600, "bounded: 1..10000 listeners, 1..600 s"
    stats = {"requests": 0, "segments": 0, "bytes": 0, "errors": 0, "connect_errors": 0, "latency": []}
    until = time.monotonic() + seconds
    await asyncio.gather(*(listener(i, host, port, playlist, until, sources[i % len(sources)], stats) for i in range(n)))
    lat = sorted(stats.pop("latency")) or [0.0]
    stats["round_p50_ms"] = round(1000 * lat[len(lat) // 2], 1)
    stats["round_p99_ms"] = round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1)
    stats["listeners"] = n
    stats["seconds"] = seconds
    print(json.dumps(stats))


asyncio.run(main())
