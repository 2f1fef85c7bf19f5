// matrix-js-sdk 43 asks for Node >= 22, but Debian 12 ships Node 18 (and this project installs Debian's):
// the only two newer globals that the SDK's code paths used by attempt.mjs touch are provided here when
// missing, and nothing else. Imported before the SDK so they exist when it runs.
import { webcrypto } from "node:crypto";

// Node 18 has Web Crypto only as node:crypto's webcrypto (randomstring.js reads globalThis.crypto).
globalThis.crypto ??= webcrypto;

// Node < 22 lacks Promise.withResolvers (uploadContent uses it).
Promise.withResolvers ??= function withResolvers() {
    let resolve, reject;
    const promise = new this((yes, no) => {
        resolve = yes;
        reject = no;
    });
    return { promise, resolve, reject };
};
