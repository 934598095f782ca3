/**
 * `node dist/bench/cluster.js`: the cluster's measurements (README "Cluster", docs/scaling.md).
 *   1. exactness at N = 1000 (random features): the block path split into 8 x 8 image blocks
 *      (blocks of 125 images) against the one-process engine (its own blocks), byte for byte;
 *   2. one block job at a real shape (ResNet-50 at 224 px: stages 28 x 28 x 512 and 14 x 14 x 1024,
 *      P = 784, C' = 512) for A = B = 2, 4, 8 images: load, LNAMD and GEMM times, bytes moved.
 * Writes bench/cluster.json.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { putBank } from '../src/cluster/bank.js';
import { blockKey, runBlockJob } from '../src/cluster/block.js';
import { DirStore } from '../src/cluster/store.js';
import { lnamdTarget } from '../src/core/lnamd.js';
import { mulberry32 } from '../src/demo/synthetic.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { toFloat16 } from '../src/io/float16.js';
import { compareSplits } from './cluster-exact.js';

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function blockTimes(ab: number, reps: number): Promise<Record<string, number>> {
  const rnd = mulberry32(11);
  const n = 2 * ab;
  const dir = mkdtempSync(join(tmpdir(), 'musc-cluster-bench-'));
  try {
    const store = new DirStore(dir);
    const s = { n, h: 28, w: 28, c: 512, data: toFloat16(Float32Array.from({ length: n * 28 * 28 * 512 }, () => rnd() * 2 - 1)) };
    const bank = await putBank(store, s);
    const target = lnamdTarget([s]);
    const block = { i0: 0, i1: ab, j0: ab, j1: n };
    const t = { loadMs: [] as number[], lnamdMs: [] as number[], gemmMs: [] as number[] };
    for (let k = 0; k < reps; k++) {
      const r = await runBlockJob(store, {
        run: 'bench',
        bank,
        target,
        r: 3,
        block,
        precision: 'fast',
        device: 'cpu',
        done: blockKey(bank, target, 3 + 2 * k, block, 'fast'),
      });
      t.loadMs.push(r.loadMs);
      t.lnamdMs.push(r.lnamdMs);
      t.gemmMs.push(r.gemmMs);
    }
    const P = 784,
      C = 512;
    return {
      images: ab,
      loadMs: median(t.loadMs),
      lnamdMs: median(t.lnamdMs),
      gemmMs: median(t.gemmMs),
      gflop: (2 * ab * ab * P * P * C) / 1e9,
      readMB: (n * 28 * 28 * 512 * 2) / 2 ** 20,
      writeMB: (8 * ab * ab * P) / 2 ** 20,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const exact = await compareSplits(1000, 4, 64, [1], [[125, 125]]);
  const blocks: Record<string, number>[] = [];
  for (const ab of [2, 4, 8]) {
    const b = await blockTimes(ab, 3);
    blocks.push(b);
    console.log(
      `block ${ab} x ${ab} images (P 784, C' 512, one thread): load ${b.loadMs!.toFixed(1)} ms, ` +
        `LNAMD ${b.lnamdMs!.toFixed(0)} ms, GEMM+reductions ${b.gemmMs!.toFixed(0)} ms ` +
        `(${(b.gflop! / (b.gemmMs! / 1000)).toFixed(1)} GFLOPS); reads ${b.readMB!.toFixed(1)} MB, writes ${b.writeMB!.toFixed(2)} MB`,
    );
  }
  const out = resolve(dirname(fileURLToPath(import.meta.url)), '../../bench/cluster.json');
  await writeFileAtomic(out, JSON.stringify({ date: new Date().toISOString(), exactness: exact, blocks }, null, 2) + '\n');
  console.log(`-> ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
