/**
 * Label-free thresholds (src/threshold.ts) with hand-computed numbers, and the pipeline's
 * `decision` column and metrics.json `f1_threshold`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { median, madThreshold, madStatistics, otsuThreshold, decide, parseDecisionRule, isNg, nextUp, labelFreeThreshold, MAD_SCALE } from '../src/threshold.js';
import { f1OptimalThreshold } from '../src/metrics/index.js';
import { generateSynthetic } from '../src/demo/synthetic.js';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { mergeSettings } from '../src/config.js';
import { parseScoresCsv } from '../src/outputs/scores.js';
import { tempDir } from './helpers/cli-env.js';
import { fakeBackbone, fakeLoader, fakeMetrics, fakeScorer } from './helpers/cli-fakes.js';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('median + k MAD: hand-computed', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  // median 3; |s - 3| = 2,1,0,1,97 -> MAD 1; t = 3 + 3 * 1.4826
  close(madThreshold([1, 2, 3, 4, 100]), 3 + 3 * 1.4826);
  close(madThreshold([1, 2, 3, 4, 100], 1), 3 + MAD_SCALE);
  const d = decide([1, 2, 3, 4, 100], { method: 'mad' });
  assert.deepEqual(d.decisions, ['OK', 'OK', 'OK', 'OK', 'NG']);
  assert.equal(d.ng, 1);
  assert.equal(d.k, 3);
  // MAD = 0 (more than half equal): sqrt(pi/2) * mean |s - median| = sqrt(pi/2) * 0.2
  close(madThreshold([0, 0, 0, 0, 1]), 3 * Math.sqrt(Math.PI / 2) * 0.2);
  assert.deepEqual(decide([0, 0, 0, 0, 1], { method: 'mad' }).decisions, ['OK', 'OK', 'OK', 'OK', 'NG']);
  // all equal: nothing NG; NaN scores are NG
  assert.equal(decide([5, 5, 5], { method: 'mad' }).ng, 0);
  assert.deepEqual(decide([1, 2, 3, NaN], { method: 'mad' }).decisions.at(-1), 'NG');
  assert.throws(() => madThreshold([1, 2], -1), /k must be >= 0/);
});

test('Otsu split: midpoint between the two clusters; finds the split when most images are defective, where MAD cannot', () => {
  // clusters {0.1, 0.15, 0.2} and {0.9, 0.95}: t = (0.2 + 0.9) / 2
  close(otsuThreshold([0.9, 0.1, 0.2, 0.95, 0.15]), 0.55);
  // 2 good, 6 defective
  const s = [0.1, 0.12, 0.8, 0.82, 0.85, 0.9, 0.88, 0.86];
  const o = decide(s, { method: 'otsu' });
  assert.deepEqual(o.decisions, ['OK', 'OK', 'NG', 'NG', 'NG', 'NG', 'NG', 'NG']);
  assert.equal(decide(s, { method: 'mad' }).ng < 6, true, 'MAD assumes a good majority');
  assert.equal(otsuThreshold([2, 2, 2]), nextUp(2), 'one value: just above it');
  assert.equal(decide([2, 2, 2], { method: 'otsu' }).ng, 0);
  // adjacent doubles: the midpoint rounds to one of them; the low one stays OK
  assert.deepEqual(decide([1, 1, nextUp(1), nextUp(1)], { method: 'otsu' }).decisions, ['OK', 'OK', 'NG', 'NG']);
});

test('the NG rule: score >= threshold, NaN is NG; thresholds for equal scores lie just above them', () => {
  assert.equal(isNg(0.5, 0.5), true);
  assert.equal(isNg(0.4999, 0.5), false);
  assert.equal(isNg(NaN, 0.5), true);
  assert.equal(isNg(-Infinity, 0), false);
  assert.equal(nextUp(1), 1 + Number.EPSILON);
  assert.equal(nextUp(-1), -1 + Number.EPSILON / 2);
  assert.equal(nextUp(0), Number.MIN_VALUE);
  // all equal: sigma 0, t just above the median; nothing NG, any higher score NG
  const m = madStatistics([5, 5, 5, NaN]);
  assert.deepEqual(m, { k: 3, threshold: nextUp(5), median: 5, mad: 0, sigma: 0 });
  assert.equal(decide([5, 5, 5], { method: 'mad', k: 0 }).ng, 0);
  assert.equal(isNg(5.0001, madThreshold([5, 5, 5])), true);
  // k = 0 with spread: t = median, the median image is NG
  assert.equal(decide([1, 2, 3], { method: 'mad', k: 0 }).ng, 2);
  assert.deepEqual(labelFreeThreshold([1, 2, 3, 4, 100]), { method: 'mad', k: 3, threshold: 3 + 3 * MAD_SCALE, median: 3, mad: 1, sigma: MAD_SCALE });
  assert.equal(labelFreeThreshold([NaN, Infinity]), null);
  assert.throws(() => decide([NaN], { method: 'otsu' }), /no finite scores/);
});

test('--decision values', () => {
  assert.deepEqual(parseDecisionRule('mad'), { method: 'mad', k: 3 });
  assert.deepEqual(parseDecisionRule('mad:2.5'), { method: 'mad', k: 2.5 });
  assert.deepEqual(parseDecisionRule('otsu'), { method: 'otsu' });
  for (const bad of ['median', 'mad:', 'mad:-1', 'otsu:2', '']) assert.throws(() => parseDecisionRule(bad), /expected mad|mad:K|otsu takes/);
});

test('pipeline: scores.csv decision column from the RsCIN scores; metrics.json f1_threshold and the rule', async () => {
  const { dir, cleanup } = await tempDir('thr');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 8, defective: 4 });
    const run = async (out: string, extra: Record<string, unknown>) => {
      const settings = mergeSettings({}, { heatmaps: 'none', ...extra });
      await runDataset({ data: set.root, out, settings, loadBackbone: fakeLoader(fakeBackbone(32, 4)), scorer: fakeScorer(), metrics: fakeMetrics() });
      return {
        rows: parseScoresCsv(await readFile(join(out, 'surface', 'scores.csv'), 'utf8')),
        metrics: JSON.parse(await readFile(join(out, 'surface', 'metrics.json'), 'utf8')) as Record<string, unknown>,
        header: (await readFile(join(out, 'surface', 'scores.csv'), 'utf8')).split('\n')[0],
      };
    };
    const a = await run(join(dir, 'a'), { decision: 'otsu' });
    assert.equal(a.header, 'path,defect,label,score,score_rscin,decision');
    const s = a.rows.map((r) => r.score_rscin);
    const t = otsuThreshold(s);
    assert.equal(a.metrics.decision_method, 'otsu');
    assert.equal(a.metrics.decision_threshold, t);
    a.rows.forEach((r) => assert.equal(r.decision, r.score_rscin >= t ? 'NG' : 'OK'));
    assert.equal(a.metrics.n_ng, a.rows.filter((r) => r.decision === 'NG').length);
    const f1 = f1OptimalThreshold(s, a.rows.map((r) => r.label ?? 0));
    assert.equal(a.metrics.f1_threshold, f1.threshold);
    // without --decision: the default column, F1-optimal with labels (NG iff score >= f1_threshold)
    const b = await run(join(dir, 'b'), {});
    assert.equal(b.header, 'path,defect,label,score,score_rscin,decision');
    assert.equal(b.metrics.decision_method, 'f1');
    assert.equal(b.metrics.f1_threshold, f1.threshold);
    assert.equal(b.metrics.decision_threshold, f1.threshold);
    b.rows.forEach((r) => assert.equal(r.decision, r.score_rscin >= f1.threshold ? 'NG' : 'OK'));
    assert.equal(b.metrics.n_ng, b.rows.filter((r) => r.score_rscin >= f1.threshold).length);
    const c = await run(join(dir, 'c'), { decision: 'mad:1' });
    assert.equal(c.metrics.decision_k, 1);
    assert.equal(c.metrics.decision_threshold, madThreshold(c.rows.map((r) => r.score_rscin), 1));
  } finally {
    await cleanup();
  }
});
