"""Counting compressed frames on a Python `websockets` connection: shared by
the peers in this folder (each imports it from beside itself)."""

from websockets.frames import Opcode

DATA = (Opcode.TEXT, Opcode.BINARY)


def count_rsv1(ws, result):
    """Wraps the negotiated extension to count data frames with RSV1 each way."""
    for extension in ws.protocol.extensions:
        decode, encode = extension.decode, extension.encode

        def counted_decode(frame, *args, _decode=decode, **kwargs):
            if frame.opcode in DATA:
                key = "received_compressed" if frame.rsv1 else "received_plain"
                result[key] += 1
            return _decode(frame, *args, **kwargs)

        def counted_encode(frame, *args, _encode=encode, **kwargs):
            frame = _encode(frame, *args, **kwargs)
            if frame.opcode in DATA and frame.rsv1:
                result["sent_compressed"] += 1
            return frame

        extension.decode, extension.encode = counted_decode, counted_encode
