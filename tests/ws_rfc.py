"""A WebSocket client written from RFC 6455 and RFC 7692 (permessage-deflate),
independent of the server's Beast: tests/test_compression.py checks the
daemon's deflated frames with it, and bench/slow_link.py counts wire bytes."""
import base64
import os
import socket
import zlib


class WebSocket:
    """One connection to ws://address/path; offers permessage-deflate with
    `deflate`. recv() returns each data message, inflated when it was
    compressed; wire_bytes counts payload bytes as framed."""

    def __init__(self, address, path, deflate=False, timeout=30):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        offer = ("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                 if deflate else "")
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n{offer}\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            piece = self.sock.recv(4096)
            assert piece, "the server closed the connection during the handshake"
            self.buf += piece
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = bytearray(rest)  # appended to in place: a big message costs O(its size)
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), lines[0]
        self.headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
        self.inflater = zlib.decompressobj(wbits=-15)  # the server keeps its context
        self.wire_bytes = 0

    def _take(self, n):
        while len(self.buf) < n:
            piece = self.sock.recv(1 << 20)
            assert piece, "the server closed the connection"
            self.buf += piece
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv(self):
        """(opcode, payload) of the next data message (1 text, 2 binary; 8 a
        close, its payload the code and reason)."""
        opcode, compressed, parts = None, False, []
        while True:
            b0, b1 = self._take(2)
            assert not b1 & 0x80, "server frames are not masked"
            n = b1 & 0x7F
            if n >= 126:
                n = int.from_bytes(self._take(2 if n == 126 else 8), "big")
            data = self._take(n)
            if b0 & 0x0F == 0x9 or b0 & 0x0F == 0xA:
                continue  # a ping or pong between fragments: not part of the message
            if opcode is None:
                opcode, compressed = b0 & 0x0F, bool(b0 & 0x40)
            parts.append(data)
            if b0 & 0x80:
                break
        payload = b"".join(parts)
        self.wire_bytes += len(payload)
        if compressed:
            payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
        return opcode, payload

    def close(self):
        self.sock.close()
