"""Push rule evaluation for one message in a room of 500 members.

Builds a homeserver over SQLite in a temporary directory (in process, no HTTP), a
public room with ``--members`` local members (10% of them with a few rules of their
own), then measures per message:

  1. pure evaluation: flatten the event once and run every member's compiled
     ruleset (``MessageContext`` + ``CompiledRuleset.evaluate``), no IO;
  2. the evaluator's work for one event (room state from cache, rulesets from cache,
     evaluation, thread lookup), without storage;
  3. the persister's in-transaction hook (``PushEvaluator.evaluate_in_txn``):
     evaluation plus storing the push actions, each in a transaction of its own;
  4. sending a message (``EventCreator.send``) with evaluation inside the event's
     transaction, as the server does, and with the hook removed: the difference is
     what evaluation adds to each message.

Usage: python bench/bench_push_rules.py [--members 500] [--messages 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from homeserver.config import parse_config
from homeserver.push.conditions import MessageContext, Recipient
from homeserver.rooms.creation import RoomCreationRequest
from homeserver.server import Homeserver
from storage.connect import open_sqlite
from storage.database import Database, Transaction
from storage.events import StoredEvent

SERVER = "bench.local"


async def run(members: int, messages: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(
            {
                "server_name": SERVER,
                "signing_key_path": str(Path(tmp) / "signing.key"),
                "media_store_path": str(Path(tmp) / "media"),
            },
            environ={},
        )
        db = await open_sqlite(Path(tmp) / "homeserver.db")
        try:
            server = await Homeserver.build(config, db=db)
        except BaseException:
            await db.close()
            raise
        try:
            await measure(server, db, members, messages)
        finally:
            await server.close()  # closes the database: the process can exit


async def measure(server: Homeserver, db: Database, members: int, messages: int) -> None:
    client = server.client
    push = client.push
    evaluator = push.evaluator
    hooks = client.persister.txn_hooks
    users = [f"@user{i}:{SERVER}" for i in range(members)]
    room_id, _ = await client.room_creation.create_room(
        users[0], RoomCreationRequest(preset="public_chat", name="Bench")
    )
    start = time.perf_counter()
    for user in users[1:]:
        await client.membership.join(user, room_id)
    print(f"room of {members} members built in {time.perf_counter() - start:.1f}s")
    for user in users[1 : members // 10]:
        await push.rules.set_rule(
            user, "content", "coffee", {"pattern": "coff*", "actions": ["notify"]}
        )
        await push.rules.set_rule(
            user,
            "override",
            "beer",
            {
                "conditions": [
                    {"kind": "event_match", "key": "content.body", "pattern": "beer"},
                    {"kind": "room_member_count", "is": "<=10"},
                ],
                "actions": ["notify"],
            },
        )

    sender = users[1]

    def content(n: int) -> dict[str, Any]:
        body: dict[str, Any] = {"msgtype": "m.text", "body": f"hello everyone, message {n}"}
        if n % 10 == 0:
            body["m.mentions"] = {"user_ids": [users[2]]}
        return body

    async def send_timed(count: int, offset: int) -> tuple[list[float], list[StoredEvent]]:
        times: list[float] = []
        sent: list[StoredEvent] = []
        for n in range(count):
            begin = time.perf_counter()
            sent.append(
                await client.creator.send(room_id, "m.room.message", sender, content(offset + n))
            )
            times.append(time.perf_counter() - begin)
        return times, sent

    # 4. sending with evaluation inside the event's transaction (the server's path),
    #    and the same without it: the difference is what evaluation adds to a send.
    assert evaluator.evaluate_in_txn in hooks
    await send_timed(10, -10)  # warm caches (room state, rulesets)
    with_eval, _ = await send_timed(messages, 0)
    hooks.remove(evaluator.evaluate_in_txn)
    try:
        without_eval, sent = await send_timed(messages, messages)
    finally:
        hooks.append(evaluator.evaluate_in_txn)

    stored = sent[0]
    assert stored.state_group is not None
    room = await evaluator.room_state(room_id, stored.state_group)
    recipients = [u for u in room.local_joined if u != sender]
    rulesets = await push.rules.compiled_for_users(recipients)

    # 1. pure evaluation: no IO
    pure: list[float] = []
    notified = 0
    for message in sent:
        begin = time.perf_counter()
        ctx = MessageContext.of(
            message.event.pdu,
            room_member_count=room.member_count,
            sender_power_level=0,
            notification_levels=room.notification_levels,
        )
        notified = 0
        for user in recipients:
            rule = rulesets[user].evaluate(ctx, Recipient(user, room.display_names.get(user)))
            if rule is not None and rule.notify:
                notified += 1
        pure.append(time.perf_counter() - begin)

    # 2. the evaluator's work for one event, without storage
    evaluate: list[float] = []
    actions: list[Any] = []
    for message in sent:
        begin = time.perf_counter()
        actions = await evaluator.evaluate_event(message)
        evaluate.append(time.perf_counter() - begin)
    assert len(actions) == notified == members - 1

    # 3. the in-transaction hook (evaluation + storing the rows), each in a transaction
    #    of its own, for the messages sent without it
    in_txn: list[float] = []
    for message in sent:

        async def evaluate_txn(txn: Transaction, message: StoredEvent = message) -> None:
            await evaluator.evaluate_in_txn(txn, message)

        begin = time.perf_counter()
        await db.run_transaction("bench_evaluate", evaluate_txn)
        in_txn.append(time.perf_counter() - begin)
    stored_rows = await db.fetchval("count", "SELECT COUNT(*) FROM event_push_actions")

    def ms(values: list[float]) -> str:
        return (
            f"median {statistics.median(values) * 1000:.2f} ms, "
            f"p90 {sorted(values)[int(len(values) * 0.9)] * 1000:.2f} ms"
        )

    per_recipient_us = statistics.median(pure) / len(recipients) * 1e6
    added = statistics.median(with_eval) - statistics.median(without_eval)
    print(f"recipients per message: {len(recipients)} ({notified} notified)")
    print(
        f"1. pure evaluation per message:          {ms(pure)} ({per_recipient_us:.2f} us/recipient)"
    )
    print(f"2. evaluator per message (no storage):   {ms(evaluate)}")
    print(f"3. evaluate_in_txn (eval + store rows):  {ms(in_txn)}")
    print(f"4. send with evaluation in its txn:      {ms(with_eval)}")
    print(f"   send without evaluation:              {ms(without_eval)}")
    print(f"   evaluation adds per message sent:     {added * 1000:.2f} ms (median difference)")
    print(f"   push action rows stored: {stored_rows}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.members, args.messages))


if __name__ == "__main__":
    main()
