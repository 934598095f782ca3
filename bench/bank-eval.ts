/**
 * Label-free verdicts of `musc predict` against the truth of an MVTec-style test folder.
 *
 *   node dist/bench/bank-eval.js OUT/predictions.csv [GROUND_TRUTH_DIR]
 *
 * Labels come from the predicted names: predict was given a folder whose sub-folders are the
 * defect types ('good' = normal), so a name is '<defect>/<file>'. Prints recall of defective
 * images, false-alarm rate of good ones, image AUROC (score and image_score), and with a
 * ground-truth folder (<defect>/<stem>_mask.png) the pixel precision, recall and IoU of the
 * predicted masks (all pixels of all images pooled).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { decodeMask } from '../src/image/decode.js';
import { rocAucScore } from '../src/metrics/roc.js';
import { parseCsv } from '../src/outputs/csv.js';

async function maskCounts(out: string, gt: string, rows: Record<string, string>[]): Promise<{ tp: number; fp: number; fn: number }> {
  const c = { tp: 0, fp: 0, fn: 0 };
  for (const r of rows) {
    if (!r.mask) continue;
    const [defect, file] = r.name!.split('/') as [string, string];
    const pred = await decodeMask(join(out, r.mask));
    const truth = defect === 'good' ? null : await decodeMask(join(gt, defect, file.replace(/\.[^.]+$/, '_mask.png')));
    for (let k = 0; k < pred.data.length; k++) {
      const p = pred.data[k]! > 127,
        t = truth ? truth.data[k]! > 127 : false;
      if (p && t) c.tp++;
      else if (p) c.fp++;
      else if (t) c.fn++;
    }
  }
  return c;
}

async function main(): Promise<void> {
  const [csv, gt] = process.argv.slice(2);
  if (!csv) throw new Error('usage: bank-eval OUT/predictions.csv [GROUND_TRUTH_DIR]');
  const [header, ...body] = parseCsv(await readFile(csv, 'utf8'));
  const rows = body.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i] ?? ''])));
  const labels = Uint8Array.from(rows, (r) => (r.name!.split('/')[0] === 'good' ? 0 : 1));
  const ng = rows.map((r) => r.verdict === 'NG');
  const nDef = labels.reduce((a, b) => a + b, 0),
    nGood = rows.length - nDef;
  const recall = ng.filter((v, i) => v && labels[i]).length / nDef;
  const fa = ng.filter((v, i) => v && !labels[i]).length / nGood;
  const auc = rocAucScore(
    rows.map((r) => Number(r.score)),
    labels,
  );
  const aucRaw = rocAucScore(
    rows.map((r) => Number(r.image_score)),
    labels,
  );
  const res: Record<string, number> = {
    images: rows.length,
    defective: nDef,
    good: nGood,
    recall,
    false_alarm: fa,
    image_auroc: auc,
    image_auroc_image_score: aucRaw,
  };
  if (gt) {
    const c = await maskCounts(dirname(csv), gt, rows);
    Object.assign(res, {
      pixel_precision: c.tp / (c.tp + c.fp),
      pixel_recall: c.tp / (c.tp + c.fn),
      pixel_iou: c.tp / (c.tp + c.fp + c.fn),
    });
  }
  process.stdout.write(JSON.stringify(res, null, 2) + '\n');
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exitCode = 1;
});
