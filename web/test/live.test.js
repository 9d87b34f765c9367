// The live client against a scripted WebSocket: subscription, resume by seq after a reconnect, reset,
// refusal (4401), backoff, and views that may no longer subscribe. Run: node --test web/test/

import assert from "node:assert/strict";
import test from "node:test";

class FakeSocket {
  static OPEN = 1;
  static all = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close() {
    this.readyState = 3;
  }

  // -- the test's side of the wire --
  open() {
    this.readyState = 1;
  }

  recv(msg) {
    this.onmessage({ data: JSON.stringify(msg) });
  }

  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose({ code, reason });
  }
}

globalThis.WebSocket = FakeSocket;
globalThis.location = { protocol: "http:", host: "example:8080" };
const { Live, backoffDelay } = await import("../src/live.js");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const last = () => FakeSocket.all[FakeSocket.all.length - 1];

function client(extra = {}) {
  const statuses = [];
  const live = new Live({
    token: () => "tok en",
    onStatus: (state) => statuses.push(state),
    backoffMinMs: 5,
    backoffMaxMs: 40,
    ...extra,
  });
  return { live, statuses };
}

test("subscribes after hello, delivers events, and resumes from the last seq after a reconnect", async () => {
  const { live, statuses } = client();
  const events = [];
  live.start();
  const ws1 = last();
  assert.equal(ws1.url, "ws://example:8080/api/v1/ws?token=tok%20en");
  ws1.open();
  ws1.recv({ type: "hello", seq: 10, principal: { name: "o", role: "operator" } });
  assert.deepEqual(ws1.sent, []); // no view has subscribed yet: nothing asked for
  live.scope().subscribe({ topics: ["incidents"], since: live.mark(), handler: (ev) => events.push(ev.seq) });
  assert.deepEqual(ws1.sent.at(-1), { type: "subscribe", topics: ["incidents"], services: [], series: [], since: 10 });
  ws1.recv({ type: "subscribed", seq: 10 });
  assert.equal(statuses.at(-1), "live");
  ws1.recv({ type: "event", seq: 11, topic: "incidents", data: {} });
  ws1.recv({ type: "event", seq: 12, topic: "incidents", data: {} });
  assert.deepEqual(events, [11, 12]);

  ws1.drop();
  assert.equal(statuses.at(-1), "retrying");
  await sleep(30);
  const ws2 = last();
  assert.notEqual(ws2, ws1);
  ws2.open();
  ws2.recv({ type: "hello", seq: 30 });
  // The same subscription, from the last event seen: the server replays 13..30 that match.
  assert.deepEqual(ws2.sent.at(-1), { type: "subscribe", topics: ["incidents"], services: [], series: [], since: 12 });
  ws2.recv({ type: "subscribed", seq: 30 });
  ws2.recv({ type: "event", seq: 14, topic: "incidents", data: {} });
  assert.deepEqual(events, [11, 12, 14]);
  live.stop();
});

test("a reset makes the view reload over REST", () => {
  const { live } = client();
  let resets = 0;
  live.start();
  const ws = last();
  ws.open();
  ws.recv({ type: "hello", seq: 100 });
  live.scope().subscribe({ topics: ["audit"], since: 3, handler: () => {}, onReset: () => resets++ });
  assert.equal(ws.sent.at(-1).since, 3);
  ws.recv({ type: "subscribed", seq: 100 });
  ws.recv({ type: "reset", seq: 100 });
  assert.equal(resets, 1);
  assert.equal(live.mark(), 100);
  live.stop();
});

test("a refused token (4401) stops reconnecting and says why", async () => {
  let denied = null;
  const { live, statuses } = client({ onDenied: (reason) => (denied = reason) });
  live.start();
  const ws = last();
  const before = FakeSocket.all.length;
  ws.open();
  ws.drop(4401, "token expired");
  await sleep(30);
  assert.equal(denied, "token expired");
  assert.equal(statuses.at(-1), "denied");
  assert.equal(FakeSocket.all.length, before);
});

test("backoff doubles up to its cap, with jitter over the upper half", () => {
  const low = () => 0;
  const high = () => 1;
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, 500, 15000, high)), [500, 1000, 2000, 4000, 8000, 15000, 15000]);
  assert.deepEqual([1, 2, 3].map((n) => backoffDelay(n, 500, 15000, low)), [250, 500, 1000]);
});

test("a view that lost the page cannot take the subscription back", () => {
  const { live } = client();
  live.start();
  const ws = last();
  ws.open();
  ws.recv({ type: "hello", seq: 1 });
  const old = live.scope();
  const current = live.scope();
  current.subscribe({ topics: ["incidents"], handler: () => {} });
  old.subscribe({ topics: ["audit"], handler: () => {} }); // its REST load finished late
  assert.deepEqual(ws.sent.map((m) => m.topics), [["incidents"]]);
  assert.equal(old.active(), false);
  live.stop();
});
