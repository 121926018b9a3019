"""Hand framing of the two messages that carry bulk bytes, so payloads skip
protobuf objects: FetchResponse {info; data} and PutRequest {header; data},
with the field numbers taken from the generated stubs."""
from typing import List, Optional, Tuple, Union

from .v1 import tensors_pb2 as _pb

BytesLike = Union[bytes, bytearray, memoryview]

# The channel settings of proto/wire/channel_args.h: a fixed 16 MiB stream
# window from the first byte (gRPC's BDP probing starts a fresh channel at
# 64 KiB and ramps up slowly), messages up to 64 MiB.
_MAX_MESSAGE_BYTES = 64 << 20
_STREAM_WINDOW_BYTES = 16 << 20
CHANNEL_OPTIONS: List[Tuple[str, int]] = [("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                   ("grpc.http2.bdp_probe", 0),
                   ("grpc.http2.lookahead_bytes", _STREAM_WINDOW_BYTES)]

_INFO: int = _pb.FetchResponse.INFO_FIELD_NUMBER
_DATA: int = _pb.FetchResponse.DATA_FIELD_NUMBER
_LENGTH_DELIMITED = 2


def decode_varint(buf: BytesLike, pos: int) -> Tuple[int, int]:
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ValueError("varint too long")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def split_fetch_response(raw: BytesLike) -> Tuple[Optional[bytes], int, int]:
    """Returns (info bytes or None, data offset, data length) of one
    serialized FetchResponse, without copying the data."""
    info = None
    data_pos, data_len = 0, 0
    pos, end = 0, len(raw)
    while pos < end:
        tag, pos = decode_varint(raw, pos)
        wire_type = tag & 7
        if wire_type == _LENGTH_DELIMITED:
            length, pos = decode_varint(raw, pos)
            if pos + length > end:
                raise ValueError("FetchResponse field runs past the message")
            if tag >> 3 == _INFO:
                info = bytes(raw[pos:pos + length])
            elif tag >> 3 == _DATA:
                data_pos, data_len = pos, length
            pos += length
        elif wire_type == 0:
            _, pos = decode_varint(raw, pos)
        else:
            raise ValueError(f"unexpected wire type {wire_type} in FetchResponse")
    return info, data_pos, data_len


_PUT_DATA_TAG = encode_varint((_pb.PutRequest.DATA_FIELD_NUMBER << 3) | _LENGTH_DELIMITED)


def put_data(chunk: BytesLike) -> bytes:
    """A serialized PutRequest carrying `chunk` (bytes-like) as data."""
    return b"".join((_PUT_DATA_TAG, encode_varint(len(chunk)), chunk))
