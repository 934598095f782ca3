/**
 * `musc rscin --scores scores.csv --features tokens.safetensors [--k 1,2,3] [--column score]
 * [--out FILE]`: RsCIN re-scoring of another method's image scores (src/rscin-plugin.ts has the
 * formats). Writes the CSV with a `score_rscin` column atomically (default: in place). With a
 * `label` column (0, 1 or empty) it prints the image AUROC of the labelled rows before and after
 * (src/metrics/evaluator.ts).
 */
import { RSCIN_K_MVTEC } from '../core/rscin.js';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { formatRscinCsv, rscinCsv } from '../rscin-plugin.js';
import { evaluateImages } from '../metrics/evaluator.js';
import { intListArg } from './args.js';

export function rscinCommand(): Command {
  const cmd = new Command('rscin')
    .description("RsCIN plug-in: re-score any method's image scores with image-level tokens (from `musc tokens`)")
    .requiredOption('--scores <csv>', 'CSV with a header, a path column and a score column (one category)')
    .requiredOption('--features <file>', 'tokens.safetensors written by `musc tokens`')
    .option('--k <list>', 'RsCIN window sizes (default: 1,2,3; VisA 1,8,9); 0 copies the scores', intListArg('--k'))
    .option('--column <name>', 'the score column (default: score)')
    .option('--out <csv>', 'output CSV (default: the --scores file, replaced atomically)')
    .option('--quiet', 'no information lines');
  cmd.action(async (f: { scores: string; features: string; k?: number[]; column?: string; out?: string; quiet?: boolean }) => {
    const kList = f.k ?? [...RSCIN_K_MVTEC];
    const r = await rscinCsv({ scoresFile: resolve(f.scores), tokensFile: resolve(f.features), kList, ...(f.column ? { column: f.column } : {}) });
    const out = resolve(f.out ?? f.scores);
    await writeFileAtomic(out, formatRscinCsv(r));
    if (!f.quiet && r.labels) {
      const e0 = evaluateImages(r.scores, r.labels), e1 = evaluateImages(r.rscin, r.labels);
      const a0 = e0.curves.roc?.auc, a1 = e1.curves.roc?.auc;
      if (a0 !== undefined && a1 !== undefined) {
        const some = e0.labelled < r.rows.length ? ` over the ${e0.labelled} labelled rows` : '';
        const k = kList.join(',');
        process.stderr.write(`image AUROC${some}: ${(100 * a0).toFixed(1)} (${f.column ?? 'score'}) -> ${(100 * a1).toFixed(1)} (score_rscin, k=${k})\n`);
      }
    }
    process.stdout.write(`musc: ${r.rows.length} rows re-scored; score_rscin written to ${out}\n`);
  });
  return cmd;
}
