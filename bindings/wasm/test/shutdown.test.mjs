// shutdown.test.mjs — shutdown is bounded with no receiver or a stalled one (the node:test timeout is the hang check).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { createPolytel } from '../src/index.js';
import { closedPort, startReceiver } from './helpers.mjs';

const base = { useEnv: false, telemetryEnabled: true, console: false };


let rx;
before(async () => {
  rx = await startReceiver();
});
after(async () => {
  await rx?.stop();
});

test('no receiver: shutdown returns (false) and the phase is none', { timeout: 30000 }, async () => {
  const pt = await createPolytel(base);
  await pt.bootstrapWorker({ endpoint: `http://127.0.0.1:${await closedPort()}`, timeoutMs: 500 });
  pt.info('nobody listens');
  pt.span('lost', () => {});
  assert.equal(await pt.shutdown(1500), false);
  assert.equal(pt.phase(), 'none');
  const s = pt.stats();
  assert.equal(s.recorded, s.exported + s.dropped + s.unconfirmed + s.pending);
  assert.equal(s.unconfirmed, 0); // connection refused: nothing was ever sent
});

test('a collector that accepts and never answers: shutdown returns (false)', { timeout: 30000 }, async () => {
  await rx.reset();
  await rx.faults([{ mode: 'stall', count: 100 }]);
  const pt = await createPolytel(base);
  await pt.bootstrapWorker({ endpoint: rx.endpoint, timeoutMs: 60000 });
  pt.info('stalled');
  assert.equal(await pt.shutdown(1000), false);
  assert.equal(pt.phase(), 'none');
  // Sent and never answered: it may have arrived, so it is neither exported nor dropped.
  const s = pt.stats();
  assert.deepEqual([s.recorded, s.exported, s.dropped, s.unconfirmed, s.pending], [1, 0, 0, 1, 0]);
  await rx.faults([]);
});

test('shutdown in phase 1 (never bootstrapped) returns and leaves phase none', { timeout: 30000 }, async () => {
  const pt = await createPolytel(base);
  pt.info('deferred forever');
  await pt.shutdown(500);
  assert.equal(pt.phase(), 'none');
});
