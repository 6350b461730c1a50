"""Bytes of unknown encoding to text."""

from __future__ import annotations

from rag.errors import DocumentError


def decode_text(data: bytes) -> str:
    """Decode bytes of unknown encoding; raises DocumentError for binary data."""
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                       (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise DocumentError(f"invalid {codec} text") from exc
    if b"\x00" in data[:8192]:
        raise DocumentError("binary data, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # UTF-8 with a few damaged bytes: keep it UTF-8 (a guessed single-byte codec would garble every umlaut) and
    # mark the damage with U+FFFD. Latin-1 and the like have no valid multi-byte sequences, so they go on below.
    lenient = data.decode("utf-8", errors="replace")
    damaged = lenient.count("\ufffd")
    if sum(1 for ch in lenient if ord(ch) > 127) - damaged > damaged:
        return lenient
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 1 << 20]).best()
    if best is None:
        raise DocumentError("binary data or unknown text encoding", "convert it to UTF-8")
    return data.decode(best.encoding, errors="replace")
