"""Group commit for votes from the web.

Requests wait in a queue; one worker takes everything waiting (up to a limit), applies it in one
transaction in a thread, and answers each request only after that transaction has committed.
Under load a commit carries hundreds of votes; when quiet, a vote is committed at once.
A batch that fails as a whole is split in halves and retried, down to the one request that
fails alone: one bad request never fails anyone else's vote.

Batches run on the batcher's own thread, not asyncio's default executor: nothing else queued
there (a flood of password checks, say) can hold up a vote.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from crossline.domain.consultations import VoteValue
from crossline.domain.records import Member
from crossline.errors import CrosslineError
from crossline.services.consultations import VoteRequest, cast_vote_batch
from crossline.services.hub import Hub

MAX_BATCH = 1000


class VoteBatcher:
    def __init__(self, hub: Hub):
        self.hub = hub
        self._queue: asyncio.Queue[tuple[VoteRequest, asyncio.Future]] = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        # One thread: batches are applied one after another by the one worker anyway.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="crossline-votes")

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._executor.shutdown(wait=True)

    async def cast(self, member: Member, consultation_id: int, choices: Sequence[tuple[int, VoteValue]],
                   submission_id: str | None) -> list[int]:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((VoteRequest(member, consultation_id, choices, submission_id), future))
        result = await future
        if isinstance(result, CrosslineError):
            raise result
        return result

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._apply_isolating, [request for request, _ in batch])
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception) and not isinstance(result, CrosslineError):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _apply_isolating(self, requests: list[VoteRequest]) -> list:
        """Each half in its own transaction when the whole fails: a failure costs log2(batch) retries."""
        try:
            return self._apply(requests)
        except Exception as error:  # noqa: BLE001 - handed to the one request it belongs to
            if len(requests) == 1:
                return [error]
            middle = len(requests) // 2
            return self._apply_isolating(requests[:middle]) + self._apply_isolating(requests[middle:])

    def _apply(self, requests: list[VoteRequest]) -> list:
        with self.hub.engine.begin() as conn:
            return cast_vote_batch(conn, self.hub, requests)
