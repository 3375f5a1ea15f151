#!/usr/bin/env python3
"""A TCP proxy that can partition, for scripts/ha: `holdproxy.py LISTEN_PORT TARGET_PORT`
(loopback only). SIGUSR1 starts a partition: no byte moves either way on open
connections, and new connections are accepted but not forwarded; the bytes wait (in the
proxy and in the kernel's buffers) and are delivered when SIGUSR2 heals it, as a network
that holds packets and then recovers would. Nothing is closed by the partition: the peers
see silence, not a reset (the loopback kernel answers TCP keepalives for the proxy, so
keepalive does not notice it either; only the peers' own timeouts do)."""

import asyncio
import signal
import sys


async def main(listen: int, target: int) -> None:
    healed = asyncio.Event()
    healed.set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await healed.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await healed.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        await healed.wait()
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, healed.clear)
    loop.add_signal_handler(signal.SIGUSR2, healed.set)
    server = await asyncio.start_server(serve, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
