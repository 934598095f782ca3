/**
 * `node dist/bench/cluster-merge.js [N] [P] [A]`: the reduction of one merge job (core/score.ts
 * reduceRows over a row block [A, P, N] of random distances, zero-shot), median of 3 runs.
 * Defaults: N = 1000, P = 784 (ResNet-50 at 224 px), A = 5 (the default block of about 4096 rows).
 */
import { zeroShotVariant } from '../src/core/plan.js';
import { reduceRows } from '../src/core/score.js';
import { mulberry32 } from '../src/demo/synthetic.js';

const [n = 1000, P = 784, A = 5] = process.argv.slice(2).map(Number);
const rnd = mulberry32(1);
const rows = Float32Array.from({ length: A * P * n }, () => rnd());
const variants = [zeroShotVariant(n, [0, 0.3])];
const out = [new Float64Array(n * P)];
const ms: number[] = [];
for (let k = 0; k < 3; k++) {
  const t = performance.now();
  reduceRows(rows, 0, n, P, variants, out);
  ms.push(performance.now() - t);
}
ms.sort((a, b) => a - b);
console.log(`reduceRows of a row block [${A}, ${P}, ${n}] (${(rows.byteLength / 1e6) | 0} MB): median ${ms[1]!.toFixed(0)} ms of 3`);
