import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { PyRandom } from '../src/datasets/py-random.js';
import { divideSubsets, divideSubsetsAt, divideTypeOf } from '../src/datasets/divide.js';

const hasPython = spawnSync('python3', ['-c', 'import random'], { encoding: 'utf8' }).status === 0;

test('PyRandom reproduces CPython 3.11 random.seed(42) + shuffle (recorded vectors)', () => {
  // recorded with CPython 3.11.7: random.seed(42); l=list(range(10)); random.shuffle(l); m=list(range(7)); random.shuffle(m)
  const r = new PyRandom(42);
  const l = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  r.shuffle(l);
  assert.deepEqual(l, [7, 3, 2, 8, 5, 6, 9, 4, 0, 1]);
  const m = [0, 1, 2, 3, 4, 5, 6];
  r.shuffle(m);
  assert.deepEqual(m, [1, 2, 5, 6, 0, 3, 4]);
});

test('PyRandom matches the local CPython for several seeds, big seeds and random()', {
  skip: !hasPython && 'python3 not available',
}, () => {
  const seeds = [0, 1, 42, 12345, 2 ** 32 + 7, 2 ** 40 + 3];
  const py = spawnSync(
    'python3',
    [
      '-c',
      `
import random, json
out = []
for s in ${JSON.stringify(seeds)}:
    random.seed(s)
    l = list(range(37)); random.shuffle(l)
    out.append([l, random.getrandbits(32), random.random()])
print(json.dumps(out))`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(py.status, 0, py.stderr);
  const expected = JSON.parse(py.stdout) as [number[], number, number][];
  seeds.forEach((s, k) => {
    const r = new PyRandom(s);
    const l = Array.from({ length: 37 }, (_, i) => i);
    r.shuffle(l);
    assert.deepEqual(l, expected[k]![0], `seed ${s}`);
    assert.equal(r.getrandbits(32), expected[k]![1]);
    assert.equal(r.random(), expected[k]![2]);
  });
});

function paths(spec: Record<string, number>): string[] {
  const out: string[] = [];
  for (const [t, n] of Object.entries(spec)) for (let i = 0; i < n; i++) out.push(`/d/cat/test/${t}/${String(i).padStart(3, '0')}.png`);
  return out;
}

test('divide_num 1 keeps the dataset order; D > 1 partitions every type evenly', () => {
  const p = paths({ broken: 7, good: 10, scratch: 3 });
  assert.deepEqual(divideSubsets(p, 1), [p.map((_, i) => i)]);
  const subs = divideSubsets(p, 3);
  assert.equal(subs.length, 3);
  const all = subs.flat().sort((a, b) => a - b);
  assert.deepEqual(
    all,
    p.map((_, i) => i),
  );
  for (const s of subs) {
    const counts: Record<string, number> = {};
    for (const i of s) counts[divideTypeOf(p[i]!)] = (counts[divideTypeOf(p[i]!)] ?? 0) + 1;
    assert.ok(counts.scratch === 1, JSON.stringify(counts));
    assert.ok(counts.good! >= 3 && counts.good! <= 4);
    assert.ok(counts.broken! >= 2 && counts.broken! <= 3);
  }
  // types in first-appearance order inside a subset, each type's ids from one shuffle
  const s0 = divideSubsetsAt(p, 3, 0);
  const types = s0.map((i) => divideTypeOf(p[i]!));
  assert.deepEqual([...new Set(types)], ['broken', 'good', 'scratch']);
  assert.throws(() => divideSubsets(p, 0), /divide_num/);
});

test('divide matches the reference sub_datasets semantics run in CPython', { skip: !hasPython && 'python3 not available' }, () => {
  const p = paths({ broken_large: 20, broken_small: 22, contamination: 21, good: 20 });
  for (const D of [2, 3, 5]) {
    const py = spawnSync(
      'python3',
      [
        '-c',
        `
import random, json, sys
paths = json.loads(sys.stdin.read())
D = ${D}
res = []
for it in range(D):
    random.seed(42)
    ids = {}
    for i, p in enumerate(paths):
        ids.setdefault(p.split('/')[-2], []).append(i)
    sub = []
    for k in ids:
        l = ids[k]; random.shuffle(l)
        chunks = [l[i:i+D] for i in range(0, len(l), D)]
        sub.extend([c[it] for c in chunks if len(c) > it])
    res.append(sub)
print(json.dumps(res))`,
      ],
      { encoding: 'utf8', input: JSON.stringify(p) },
    );
    assert.equal(py.status, 0, py.stderr);
    assert.deepEqual(divideSubsets(p, D), JSON.parse(py.stdout), `divide_num ${D}`);
  }
});
