"""Push rule evaluation for one message in a room of 500 members.

Builds a homeserver over SQLite in a temporary directory (in process, no HTTP), a
public room with ``--members`` local members (10% of them with a few rules of their
own), then measures per message:

  1. pure evaluation: flatten the event once and run every member's compiled
     ruleset (``MessageContext`` + ``CompiledRuleset.evaluate``), no IO;
  2. the evaluator's work for one event (room state from cache, rulesets from cache,
     evaluation, thread lookup), without storage;
  3. the full background path: evaluation plus storing the push actions and the
     evaluation position in one transaction (``PushEvaluator.catch_up``).

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
        server = await Homeserver.build(config, db=db)
        client = server.client
        push = client.push
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
        await push.evaluator.catch_up()
        # From here on evaluation runs only when this script asks for it.
        client.persister.persisted_hooks.remove(push.evaluator.on_event_persisted)

        sender = users[1]
        sent = []
        for n in range(messages):
            content: dict[str, Any] = {"msgtype": "m.text", "body": f"hello everyone, message {n}"}
            if n % 10 == 0:
                content["m.mentions"] = {"user_ids": [users[2]]}
            sent.append(await client.creator.send(room_id, "m.room.message", sender, content))

        stored = sent[0]
        assert stored.state_group is not None
        room = await push.evaluator.room_state(room_id, stored.state_group)
        recipients = [u for u in room.local_joined if u != sender]
        rulesets = await push.rules.compiled_for_users(recipients)
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

        evaluate: list[float] = []
        for message in sent:
            begin = time.perf_counter()
            actions = await push.evaluator.evaluate_event(message)
            evaluate.append(time.perf_counter() - begin)
        assert len(actions) == notified == members - 1

        begin = time.perf_counter()
        await push.evaluator.catch_up()
        full = (time.perf_counter() - begin) / messages
        stored_rows = await db.fetchval("count", "SELECT COUNT(*) FROM event_push_actions")

        def ms(values: list[float]) -> str:
            return (
                f"median {statistics.median(values) * 1000:.2f} ms, "
                f"p90 {sorted(values)[int(len(values) * 0.9)] * 1000:.2f} ms"
            )

        per_recipient_us = statistics.median(pure) / len(recipients) * 1e6
        print(f"recipients per message: {len(recipients)} ({notified} notified)")
        print(
            f"1. pure evaluation per message:         {ms(pure)} ({per_recipient_us:.2f} us/recipient)"
        )
        print(f"2. evaluator per message (no storage):  {ms(evaluate)}")
        print(f"3. evaluation + storing actions:        {full * 1000:.2f} ms per message (batched)")
        print(f"   push action rows stored: {stored_rows}")
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.members, args.messages))


if __name__ == "__main__":
    main()
