/** The service's bounded queue (src/service/queue.ts) on its own: bound, order, slots held until their task ends. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueueFullError, WorkQueue } from '../src/service/queue.js';

const gate = (): { p: Promise<void>; open: () => void } => {
  let open = (): void => undefined;
  const p = new Promise<void>((ok) => (open = ok));
  return { p, open };
};

test('depth + 1 slots; the next gets QueueFullError with a Retry-After of at least 1 s', () => {
  const q = new WorkQueue(2);
  const slots = [q.acquire(), q.acquire(), q.acquire()];
  assert.throws(
    () => q.acquire(),
    (e: unknown) => e instanceof QueueFullError && e.retryAfterSeconds >= 1,
  );
  slots[0]!.release();
  slots[0]!.release(); // idempotent
  assert.equal(q.size, 2);
  q.acquire();
  assert.throws(() => q.acquire(), QueueFullError);
  assert.throws(() => new WorkQueue(-1));
});

test('tasks run one at a time in slot order; a failing task does not stop the next', async () => {
  const q = new WorkQueue(3);
  const order: string[] = [];
  let running = 0;
  const job =
    (name: string, g: Promise<void>, fail = false) =>
    async () => {
      running++;
      assert.equal(running, 1, 'one at a time');
      order.push(`start ${name}`);
      await g;
      running--;
      order.push(`end ${name}`);
      if (fail) throw new Error(name);
      return name;
    };
  const [ga, gb, gc] = [gate(), gate(), gate()];
  const a = q.acquire().run(job('a', ga.p, true));
  const b = q.acquire().run(job('b', gb.p));
  const c = q.acquire().run(job('c', gc.p));
  gc.open();
  gb.open();
  ga.open();
  await assert.rejects(a, /a/);
  assert.equal(await b, 'b');
  assert.equal(await c, 'c');
  assert.deepEqual(order, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
});

test('a slot released while its task waits stays taken until the task has run', async () => {
  const q = new WorkQueue(1);
  const g = gate();
  const s1 = q.acquire();
  const t1 = s1.run(() => g.p);
  const s2 = q.acquire();
  const t2 = s2.run(async () => 'second');
  s2.release(); // its client left
  assert.equal(q.size, 2);
  assert.throws(() => q.acquire(), QueueFullError);
  g.open();
  await t1;
  s1.release();
  assert.equal(await t2, 'second');
  await q.idle();
  assert.equal(q.size, 0);
  q.acquire();
});
