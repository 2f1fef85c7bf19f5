// End-to-end encryption of a live session's media frames, off the page's thread.
//
// Every encoded frame leaves as
//   [clear header][AES-GCM-256 ciphertext + tag of the rest][IV: 12 random bytes][epoch % 256: 1 byte]
// with the clear header as additional data. The header stays readable because the SFU and the
// receiving browser's depacketiser need it: audio 1 byte (the Opus TOC), VP8 video 10 bytes on a
// key frame and 3 on a delta frame. Janus forwards the rest without ever holding the key.
// A frame that cannot be encrypted is dropped, never sent in clear; one that cannot be decrypted
// is dropped, never played as noise.
"use strict";

const KEPT_EPOCHS = 3;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const keys = new Map(); // epoch % 256 -> {epoch, key: CryptoKey}
let current = null; // the epoch we encrypt with

function fromBase64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

async function setKeys(list, epoch) {
  for (const entry of list) {
    const known = keys.get(entry.epoch % 256);
    if (known && known.epoch === entry.epoch) continue;
    const raw = fromBase64url(entry.key);
    const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
    raw.fill(0);
    keys.set(entry.epoch % 256, { epoch: entry.epoch, key: key });
  }
  current = epoch;
  // Keep only the newest epochs: a removed person's key stops opening anything new.
  const oldest = epoch - KEPT_EPOCHS + 1;
  for (const [slot, entry] of keys) if (entry.epoch < oldest) keys.delete(slot);
}

function headerLength(kind, frame) {
  if (kind === "audio") return 1;
  return frame.type === "key" ? 10 : 3;
}

function encrypter(kind) {
  return async (frame, controller) => {
    const data = new Uint8Array(frame.data);
    const entry = current === null ? null : keys.get(current % 256);
    if (!entry || data.length === 0) return;
    const n = Math.min(headerLength(kind, frame), data.length);
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const header = data.slice(0, n);
    const sealed = new Uint8Array(await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: iv, additionalData: header }, entry.key, data.subarray(n)));
    const out = new Uint8Array(n + sealed.length + IV_BYTES + 1);
    out.set(header, 0);
    out.set(sealed, n);
    out.set(iv, n + sealed.length);
    out[out.length - 1] = entry.epoch % 256;
    frame.data = out.buffer;
    controller.enqueue(frame);
  };
}

function decrypter(kind) {
  return async (frame, controller) => {
    const data = new Uint8Array(frame.data);
    const n = headerLength(kind, frame);
    if (data.length < n + TAG_BYTES + IV_BYTES + 1) return;
    const entry = keys.get(data[data.length - 1]);
    if (!entry) return;
    const iv = data.subarray(data.length - 1 - IV_BYTES, data.length - 1);
    try {
      const plain = new Uint8Array(await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: iv, additionalData: data.subarray(0, n) },
        entry.key, data.subarray(n, data.length - 1 - IV_BYTES)));
      const out = new Uint8Array(n + plain.length);
      out.set(data.subarray(0, n), 0);
      out.set(plain, n);
      frame.data = out.buffer;
      controller.enqueue(frame);
    } catch (error) {
      // Wrong key or altered in transit: dropped.
    }
  };
}

onmessage = (event) => {
  const message = event.data;
  if (message.type === "keys") {
    setKeys(message.keys, message.epoch);
  } else if (message.type === "forget") {
    keys.clear();
    current = null;
  } else if (message.type === "encrypt" || message.type === "decrypt") {
    const transform = message.type === "encrypt" ? encrypter(message.kind) : decrypter(message.kind);
    message.readable
      .pipeThrough(new TransformStream({ transform: transform }))
      .pipeTo(message.writable)
      .catch(() => {}); // the track ended
  }
};
