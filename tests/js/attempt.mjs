// One Matrix action as Element would send it, through matrix-js-sdk's MatrixClient (the SDK Element
// is built on), so the tests see each of the hub's refusals the way Element's users would.
//
// Reads one JSON object on stdin: {base_url, user_id, access_token, action, ...the action's fields}
// (stdin, not argv: an access token on a command line is visible to every local user).
// Prints one JSON line: {"ok": true, "result": ...} or {"ok": false, "status", "errcode", "error"}.
// No crypto: none of these actions needs it. The client syncs only for room_as_shown, once.
import "./node-compat.mjs";
import "./console-to-stderr.mjs";
import { ClientEvent, createClient, Filter, MatrixError, SyncState } from "matrix-js-sdk";

const ACTIONS = {
    set_display_name: (client, { name }) => client.setDisplayName(name),
    // A per-room name: her own m.room.member state event, as Element's /myroomnick sends it.
    set_room_member: async (client, { room_id, content }) => {
        const current = await client.getStateEvent(room_id, "m.room.member", client.getUserId());
        return client.sendStateEvent(room_id, "m.room.member", { ...current, ...content }, client.getUserId());
    },
    // Any other room state Element sets (name, topic, picture, canonical address).
    send_state: (client, { room_id, event_type, content, state_key = "" }) =>
        client.sendStateEvent(room_id, event_type, content, state_key),
    create_room: (client, { options }) => client.createRoom(options),
    create_alias: (client, { alias, room_id }) => client.createAlias(alias, room_id),
    set_directory_visibility: (client, { room_id, visibility }) =>
        client.setRoomDirectoryVisibility(room_id, visibility),
    invite: (client, { room_id, user_id, reason }) =>
        client.invite(room_id, user_id, reason === undefined ? {} : { reason }),
    join: async (client, { room_id }) => ({ room_id: (await client.joinRoom(room_id)).roomId }),
    // Element's "Decline" of an invitation, and leaving a room.
    leave: (client, { room_id }) => client.leave(room_id),
    // `content_base64`: the file's bytes; the answer's result.content_uri is the mxc:// URI.
    upload: (client, { content_base64, content_type, name }) =>
        client.uploadContent(new Blob([Buffer.from(content_base64, "base64")], { type: content_type }), {
            name,
            type: content_type,
        }),
    set_avatar_url: (client, { url }) => client.setAvatarUrl(url),
    // What her client shows of a room after one sync, as Element's room list would (for an
    // invitation: only what the server let into its invite state).
    room_as_shown: async (client, { room_id }) => {
        const prepared = new Promise((resolve, reject) =>
            client.on(ClientEvent.Sync, (state, _previous, data) => {
                if (state === SyncState.Prepared) resolve();
                else if (state === SyncState.Error) reject(data?.error);
            }),
        );
        // A filter of its own: Synapse answers an initial sync identical to a recent one from its cache.
        const filter = new Filter(client.getUserId());
        filter.setDefinition({
            account_data: { not_types: [`x.crossline.test.${crypto.randomUUID()}`] },
            room: { timeline: { limit: 1 } },
        });
        await client.startClient({ filter });
        try {
            await prepared;
        } finally {
            client.stopClient();
        }
        const room = client.getRoom(room_id);
        if (!room) return { membership: null };
        const topic = room.currentState.getStateEvents("m.room.topic", "");
        return {
            membership: room.getMyMembership(),
            name: room.name,
            topic: topic ? topic.getContent().topic : null,
            state_types: [...room.currentState.events.keys()].sort(),
        };
    },
};

// Exits once the line is out: a stopped client can leave timers and requests that would keep Node up.
function answer(outcome) {
    process.stdout.write(JSON.stringify(outcome) + "\n", () => process.exit(0));
}

async function main() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    const perform = ACTIONS[request.action];
    if (!perform) {
        answer({ ok: false, status: 0, errcode: "HARNESS_UNKNOWN_ACTION", error: `no action ${request.action}` });
        return;
    }
    const client = createClient({
        baseUrl: request.base_url,
        accessToken: request.access_token,
        userId: request.user_id,
    });
    try {
        answer({ ok: true, result: (await perform(client, request)) ?? {} });
    } catch (error) {
        if (!(error instanceof MatrixError)) throw error; // a harness bug, not a refusal: exit non-zero
        answer({ ok: false, status: error.httpStatus, errcode: error.errcode, error: error.data.error });
    }
}

await main();
