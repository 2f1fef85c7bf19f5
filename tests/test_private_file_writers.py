"""write_private_file: two writers at once each replace the file whole (review of issue 26, finding 9)."""

from __future__ import annotations

import json
import threading

from crossline.secrets import write_private_file


def test_two_writers_at_once_never_interleave(tmp_path):
    path = tmp_path / "known-members.json"
    documents = [json.dumps({"writer": w, "members": ["x" * 200_000]}) for w in range(2)]
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def write(document: str) -> None:
        start.wait()
        try:
            for _ in range(30):
                write_private_file(path, document)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=write, args=(d,)) for d in documents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert path.read_text() in documents, "one writer's document, whole"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["known-members.json"], "no temporary file left"
