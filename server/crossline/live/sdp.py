"""The few changes the hub makes to session descriptions between a browser and Janus. Pure."""

from __future__ import annotations

import math
import re


def _sections(sdp: str) -> list[list[str]]:
    """The session part, then one list of lines per m= section."""
    sections: list[list[str]] = [[]]
    for line in sdp.replace("\r\n", "\n").rstrip("\n").split("\n"):
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _join(sections: list[list[str]]) -> str:
    return "\r\n".join(line for section in sections for line in section) + "\r\n"


def _mid(section: list[str]) -> str | None:
    return next((line[len("a=mid:"):] for line in section if line.startswith("a=mid:")), None)


def audio_mids(sdp: str) -> list[str]:
    return [mid for section in _sections(sdp)[1:]
            if section[0].startswith("m=audio ") and section[0].split(" ")[1] != "0" and (mid := _mid(section))]


def without_video(offer: str) -> str:
    """Every video section of an offer refused (port 0, out of the bundle), as a browser writes a
    stopped transceiver: Janus then answers it refused, and the browser sends no video."""
    sections = _sections(offer)
    refused = set()
    for section in sections[1:]:
        if section[0].startswith("m=video "):
            parts = section[0].split(" ")
            parts[1] = "0"
            section[0] = " ".join(parts)
            refused.add(_mid(section))
    for index, line in enumerate(sections[0]):
        if line.startswith("a=group:BUNDLE "):
            kept = [mid for mid in line.split(" ")[1:] if mid not in refused]
            sections[0][index] = "a=group:BUNDLE " + " ".join(kept)
    return _join(sections)


def cap_opus_bitrate(answer: str, bitrate: int) -> str:
    """An answer telling the browser to send Opus at most `bitrate` bits per second
    (maxaveragebitrate, RFC 7587) and to keep the whole audio section under it (b=AS)."""
    sections = _sections(answer)
    for section in sections[1:]:
        if not section[0].startswith("m=audio"):
            continue
        opus = [m.group(1) for line in section if (m := re.match(r"a=rtpmap:(\d+) opus/", line, re.I))]
        for payload in opus:
            fmtp = f"a=fmtp:{payload} "
            index = next((i for i, line in enumerate(section) if line.startswith(fmtp)), None)
            if index is None:
                rtpmap = next(i for i, line in enumerate(section) if line.startswith(f"a=rtpmap:{payload} "))
                section.insert(rtpmap + 1, f"{fmtp}maxaveragebitrate={bitrate}")
            else:
                params = [p for p in section[index][len(fmtp):].split(";") if p and not p.startswith("maxaveragebitrate=")]
                section[index] = fmtp + ";".join([*params, f"maxaveragebitrate={bitrate}"])
        section[:] = [line for line in section if not line.startswith("b=AS:")]
        at = next((i + 1 for i, line in enumerate(section) if line.startswith("c=")), 1)
        section.insert(at, f"b=AS:{math.ceil(bitrate / 1000)}")
    return _join(sections)
