// Drives matrix-js-sdk's SlidingSync (simplified sliding sync, MSC4186, the
// org.matrix.simplified_msc3575 endpoint) against a homeserver, as Element Web
// does, and checks what the SDK ends up knowing.
//
//   node sliding_sync_check.mjs --base-url URL --token-a TOKEN --token-b TOKEN \
//        [--expect-order '!r1,!r2,...'] [--timeout-ms 15000]
//
// The same values may come from the environment: HS_BASE_URL, TOKEN_A, TOKEN_B,
// EXPECT_ORDER, CHECK_TIMEOUT_MS.
//
// User A must be joined to at least three rooms, and user B to A's third room by
// recency (normally to all of them). --expect-order lists A's rooms most recent
// first, as the server should order them.
//
// Checks:
//   advertised      /versions offers org.matrix.simplified_msc3575 (as Element Web asks it)
//   initial_list    the first response's list holds exactly A's joined rooms, ordered by
//                   bump_stamp as expected, and its count is their number
//   e2ee            the e2ee extension answered (device_one_time_keys_count)
//   moved_to_top    B's message into the third room moves it to the top of the list
//   timeline        that message arrives as a timeline event in the SDK's room
//   state           a room name set by A arrives and the SDK's room is renamed
//   to_device       a to-device message from B to A's device arrives through the
//                   to_device extension
//
// Prints one JSON line on stdout ({"ok": bool, "checks": {...}, ...}) and exits 0 only
// if every check passed. Every wait is bounded; the whole run is bounded too.

import { parseArgs } from "node:util";

import * as RustCrypto from "@matrix-org/matrix-sdk-crypto-wasm";
import { ClientEvent, createClient, RoomEvent } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { SlidingSync, SlidingSyncEvent, SlidingSyncState } from "matrix-js-sdk/lib/sliding-sync.js";

const { values: args } = parseArgs({
    options: {
        "base-url": { type: "string", default: process.env.HS_BASE_URL },
        "token-a": { type: "string", default: process.env.TOKEN_A },
        "token-b": { type: "string", default: process.env.TOKEN_B },
        "expect-order": { type: "string", default: process.env.EXPECT_ORDER },
        "timeout-ms": { type: "string", default: process.env.CHECK_TIMEOUT_MS ?? "15000" },
    },
});

const WAIT_MS = Number(args["timeout-ms"]);
const LIST = "all_rooms";
const REQUIRED_STATE = [
    ["m.room.create", ""],
    ["m.room.name", ""],
    ["m.room.avatar", ""],
    ["m.room.topic", ""],
    ["m.room.encryption", ""],
    ["m.room.join_rules", ""],
    ["m.room.member", "$ME"],
    ["m.room.member", "$LAZY"],
];

const result = { ok: false, checks: {}, timings_ms: {} };
const started = Date.now();

function emit(exitCode) {
    result.timings_ms.total = Date.now() - started;
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(exitCode);
}

function record(name, ok, detail = {}) {
    result.checks[name] = { ok, ...detail };
}

// The whole run is bounded, whatever happens below.
const overall = setTimeout(() => {
    result.error = `overall timeout after ${WAIT_MS * 6} ms`;
    emit(3);
}, WAIT_MS * 6);
overall.unref();

for (const name of ["base-url", "token-a", "token-b"]) {
    if (!args[name]) {
        result.error = `missing --${name}`;
        emit(2);
    }
}
const baseUrl = args["base-url"].replace(/\/+$/, "");

// stdout carries only the result line: the SDK's logging (warnings up) and the Rust
// crypto's tracing go to stderr.
logger.setLevel(process.env.SDK_LOG_LEVEL ?? "warn");
for (const level of ["log", "info", "debug", "trace"]) {
    console[level] = (...parts) => console.error(...parts);
}

let txnCounter = 0;
async function api(token, method, path, body) {
    const resp = await fetch(`${baseUrl}/_matrix/client/v3${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(WAIT_MS),
    });
    const data = await resp.json();
    if (!resp.ok) {
        throw new Error(`${method} ${path} -> ${resp.status} ${JSON.stringify(data)}`);
    }
    return data;
}
const txn = () => `ssc-${Date.now()}-${txnCounter++}`;
const enc = encodeURIComponent;

// Resolves when predicate() holds, checked after each sync response and on each
// emitter event given; rejects after WAIT_MS.
function waitFor(what, predicate, emitters = []) {
    return new Promise((resolve, reject) => {
        const cleanups = [];
        const done = (fn, value) => {
            for (const cleanup of cleanups) cleanup();
            fn(value);
        };
        const check = () => {
            let value;
            try {
                value = predicate();
            } catch (err) {
                done(reject, err);
                return;
            }
            if (value) done(resolve, value);
        };
        const timer = setTimeout(() => done(reject, new Error(`timed out waiting for ${what}`)), WAIT_MS);
        cleanups.push(() => clearTimeout(timer));
        for (const [emitter, event] of emitters) {
            emitter.on(event, check);
            cleanups.push(() => emitter.off(event, check));
        }
        check();
    });
}

async function main() {
    const [whoA, whoB] = await Promise.all([
        api(args["token-a"], "GET", "/account/whoami"),
        api(args["token-b"], "GET", "/account/whoami"),
    ]);
    const joined = (await api(args["token-a"], "GET", "/joined_rooms")).joined_rooms;
    const expectOrder = args["expect-order"] ? args["expect-order"].split(",").filter(Boolean) : null;
    result.user_a = whoA.user_id;
    result.device_a = whoA.device_id;

    const client = createClient({
        baseUrl,
        accessToken: args["token-a"],
        userId: whoA.user_id,
        deviceId: whoA.device_id,
    });
    // As Element Web: the Rust crypto stack, which makes SlidingSyncSdk register the e2ee
    // extension next to to_device (kept in memory: there is no IndexedDB in Node).
    await client.initRustCrypto({ useIndexedDB: false });
    // initRustCrypto turns the crypto's tracing on at debug level; warnings are enough here.
    new RustCrypto.Tracing(RustCrypto.LoggerLevel.Warn).turnOn();

    // advertised: what Element Web checks before it turns simplified sliding sync on.
    const advertised = await client.doesServerSupportUnstableFeature("org.matrix.simplified_msc3575");
    record("advertised", advertised === true, { feature: "org.matrix.simplified_msc3575" });

    const slidingSync = new SlidingSync(
        baseUrl,
        new Map([
            [
                LIST,
                {
                    ranges: [[0, 19]],
                    timeline_limit: 5,
                    required_state: REQUIRED_STATE,
                },
            ],
        ]),
        { timeline_limit: 5, required_state: REQUIRED_STATE },
        client,
        // The long-poll timeout sent to the server; the SDK gives up 10 s after it.
        Math.max(1000, Math.floor(WAIT_MS / 2)),
    );

    // Raw responses, to check what the server said beside what the SDK made of it.
    const responses = [];
    let syncError = null;
    slidingSync.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
        if (state === SlidingSyncState.RequestFinished) {
            if (err) syncError = String(err);
            else if (resp) responses.push(resp);
        }
    });

    const toDevice = [];
    client.on(ClientEvent.ToDeviceEvent, (event) => toDevice.push(event));

    // The list as the client shows it: A's joined rooms, most recent (highest bump stamp) first.
    const roomList = () =>
        client
            .getRooms()
            .filter((room) => room.getMyMembership() === "join")
            .sort((a, b) => (b.getBumpStamp() ?? 0) - (a.getBumpStamp() ?? 0))
            .map((room) => room.roomId);

    const t0 = Date.now();
    await client.startClient({ slidingSync });
    const lifecycle = [slidingSync, SlidingSyncEvent.Lifecycle];
    try {
        await waitFor(
            "the first sliding sync response",
            () => {
                if (responses.length > 0) return true;
                if (syncError !== null) throw new Error(`sliding sync request failed: ${syncError}`);
                return false;
            },
            [lifecycle],
        );
        // The SDK processes the rooms after RequestFinished; wait until it has them all.
        await waitFor("the rooms of the first response", () => roomList().length >= Math.min(joined.length, 20), [lifecycle]);
    } catch (err) {
        record("initial_list", false, { error: String(err), sync_error: syncError });
        throw err;
    }
    result.timings_ms.first_response = Date.now() - t0;

    // initial_list
    const first = responses[0];
    const initial = roomList();
    const stamps = initial.map((id) => client.getRoom(id).getBumpStamp() ?? null);
    const expected = expectOrder ?? initial;
    const listCount = first.lists?.[LIST]?.count;
    const sameSet = initial.length === joined.length && joined.every((id) => initial.includes(id));
    const distinctStamps = stamps.every((s) => s !== null) && new Set(stamps).size === stamps.length;
    record(
        "initial_list",
        sameSet && distinctStamps && listCount === joined.length && JSON.stringify(initial) === JSON.stringify(expected),
        { rooms: initial, expected, bump_stamps: stamps, count: listCount, joined: joined.length },
    );

    // e2ee: the extension answered on the first response.
    const e2ee = responses.find((r) => r.extensions?.e2ee)?.extensions?.e2ee;
    record("e2ee", Boolean(e2ee && typeof e2ee.device_one_time_keys_count === "object"), {
        response: e2ee ?? null,
    });

    if (initial.length < 3) {
        throw new Error(`user A needs at least 3 rooms, has ${initial.length}`);
    }

    // moved_to_top + timeline: B writes into the third room.
    const target = initial[2];
    const body = `sliding sync check ${txn()}`;
    const t1 = Date.now();
    const { event_id: messageId } = await api(
        args["token-b"],
        "PUT",
        `/rooms/${enc(target)}/send/m.room.message/${txn()}`,
        { msgtype: "m.text", body },
    );
    const timelineHas = () =>
        client
            .getRoom(target)
            ?.getLiveTimeline()
            .getEvents()
            .find((e) => e.getId() === messageId);
    try {
        await waitFor("B's message in A's timeline", timelineHas, [lifecycle, [client, RoomEvent.Timeline]]);
        const event = timelineHas();
        record("timeline", event.getSender() === whoB.user_id && event.getContent().body === body, {
            room: target,
            event_id: messageId,
            ms: Date.now() - t1,
        });
    } catch (err) {
        record("timeline", false, { room: target, event_id: messageId, error: String(err) });
    }
    try {
        await waitFor("the third room at the top", () => roomList()[0] === target, [lifecycle]);
        const after = roomList();
        record(
            "moved_to_top",
            JSON.stringify(after) === JSON.stringify([target, ...initial.filter((id) => id !== target)]),
            { rooms: after, ms: Date.now() - t1 },
        );
    } catch (err) {
        record("moved_to_top", false, { rooms: roomList(), error: String(err) });
    }

    // state: A renames another room through the plain API; the SDK learns it from the sync.
    const renamed = roomList()[1];
    const name = `Renamed ${txn()}`;
    const t2 = Date.now();
    await api(args["token-a"], "PUT", `/rooms/${enc(renamed)}/state/m.room.name/`, { name });
    const nameState = () =>
        client.getRoom(renamed)?.currentState.getStateEvents("m.room.name", "")?.getContent().name;
    try {
        await waitFor("the new room name", () => client.getRoom(renamed)?.name === name && nameState() === name, [
            lifecycle,
            [client, RoomEvent.Name],
        ]);
        record("state", true, { room: renamed, name, ms: Date.now() - t2 });
    } catch (err) {
        record("state", false, {
            room: renamed,
            name: client.getRoom(renamed)?.name ?? null,
            error: String(err),
        });
    }

    // to_device: B sends to A's device.
    const nonce = txn();
    const t3 = Date.now();
    await api(args["token-b"], "PUT", `/sendToDevice/org.example.sliding_sync_check/${txn()}`, {
        messages: { [whoA.user_id]: { [whoA.device_id]: { nonce } } },
    });
    const received = () => toDevice.find((e) => e.getContent().nonce === nonce);
    try {
        await waitFor("the to-device message", received, [lifecycle, [client, ClientEvent.ToDeviceEvent]]);
        const event = received();
        record(
            "to_device",
            event.getSender() === whoB.user_id && event.getType() === "org.example.sliding_sync_check",
            { ms: Date.now() - t3 },
        );
    } catch (err) {
        record("to_device", false, { error: String(err) });
    }

    result.responses = responses.length;
    slidingSync.stop();
    client.stopClient();
}

const REQUIRED = ["advertised", "initial_list", "e2ee", "timeline", "moved_to_top", "state", "to_device"];
main()
    .catch((err) => {
        result.error = String(err?.stack ?? err);
    })
    .finally(() => {
        result.ok = !result.error && REQUIRED.every((name) => result.checks[name]?.ok === true);
        emit(result.ok ? 0 : 1);
    });
