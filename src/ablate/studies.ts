/**
 * The paper's ablation studies as rows (MuSc, ICLR 2024, §4.3 and appendix A.6):
 *
 *   r       LNAMD aggregation degrees: {1}, {3}, {5}, {1,3}, {3,5}, {1,3,5}, and {1,5} (not the paper's:
 *           `musc run`'s with fused input sizes at other stages, core/defaults.ts FUSED_R_LIST); with a
 *           backbone whose default is per-stage degrees, those too ({1,3 / 1,5,7}: FUSED_STAGE_R_LIST)
 *   msm     MSM reduction of the sorted scores: min, max, mean over all, and interval averages
 *           [0,0.1], [0,0.3], [0,0.5], [0.1,0.3]
 *   rscin   RsCIN off, each single window k > 1 of the dataset's list, the multi-window list (also
 *           when the baseline has RsCIN off, as `--rscin auto` does for ResNets)
 *   divide  the images split into 1, 2, 3 subsets scored separately (--divide)
 *   shots   0, 1, 2, 4 reference images: MuSc with references in the pool, and MuSc+ (k > 0)
 *
 * Every row differs from the baseline (r {1,3,5}, interval [0,0.3], the dataset's RsCIN windows,
 * 1 subset, zero-shot) in its study's setting only.
 */
import { type Reduction, unionRList } from '../core/plan.js';
import { DEFAULT_INTERVAL, DEFAULT_R_LIST, FUSED_R_LIST, stageLabel } from '../core/defaults.js';

export type StudyName = 'r' | 'msm' | 'rscin' | 'divide' | 'shots';
export const STUDIES: readonly StudyName[] = ['r', 'msm', 'rscin', 'divide', 'shots'];

export const R_COMBOS: number[][] = [[1], [3], [5], [1, 3], [3, 5], [1, 3, 5], FUSED_R_LIST];
export const MSM_VARIANTS: { label: string; reduce: Reduction }[] = [
  { label: 'min', reduce: { kind: 'min' } },
  { label: 'max', reduce: { kind: 'max' } },
  { label: 'mean', reduce: { kind: 'mean' } },
  { label: '[0,0.1]', reduce: { kind: 'interval', interval: [0, 0.1] } },
  { label: '[0,0.3]', reduce: { kind: 'interval', interval: [0, 0.3] } },
  { label: '[0,0.5]', reduce: { kind: 'interval', interval: [0, 0.5] } },
  { label: '[0.1,0.3]', reduce: { kind: 'interval', interval: [0.1, 0.3] } },
];
export const DIVIDE_COUNTS = [1, 2, 3];
export const SHOT_COUNTS = [0, 1, 2, 4];

export const BASE_R = DEFAULT_R_LIST;
export const BASE_REDUCE: Reduction = { kind: 'interval', interval: DEFAULT_INTERVAL };

/** One table row: a full configuration. */
export interface RowConfig {
  study: StudyName;
  /** what the row varies, as printed */
  setting: string;
  /** LNAMD degrees (every stage; with stageRList, their union) */
  rList: number[];
  /** per-stage degrees (core/plan.ts ScoringPlan.stageRList) */
  stageRList?: number[][];
  reduce: Reduction;
  /** RsCIN windows ([] = off) */
  kList: number[];
  divide: number;
  shots: number;
  mode: 'musc' | 'musc-plus';
}

/** The RsCIN rows: off, each single window k > 1, the whole list (windows 0 = off: no more rows). */
export function rscinWindows(kList: number[]): { label: string; k: number[] }[] {
  const rows = [{ label: 'off', k: [] as number[] }];
  const on = kList.filter((k) => k > 0);
  for (const k of on) if (k > 1) rows.push({ label: `k={${k}}`, k: [k] });
  if (on.length) rows.push({ label: `k={${on.join(',')}}`, k: on });
  return rows;
}

/**
 * Rows of the chosen studies (baseline settings elsewhere). kList: the baseline's RsCIN windows
 * ([0] = off); rscinStudy: the windows the rscin study measures (default kList); stageLists: more
 * r rows with per-stage degrees (`musc ablate` adds the loaded backbone's default, core/defaults.ts).
 */
export function studyRows(
  studies: StudyName[],
  kList: number[],
  shotCounts = SHOT_COUNTS,
  rscinStudy = kList,
  stageLists: number[][][] = [],
): RowConfig[] {
  const base = { rList: BASE_R, reduce: BASE_REDUCE, kList, divide: 1, shots: 0, mode: 'musc' as const };
  const rows: RowConfig[] = [];
  for (const st of studies) {
    if (st === 'r') {
      for (const r of R_COMBOS) rows.push({ ...base, study: st, setting: `r={${r.join(',')}}`, rList: r });
      for (const lists of stageLists)
        rows.push({
          ...base,
          study: st,
          setting: `r={${stageLabel(lists, ' / ')}}`,
          rList: unionRList(lists),
          stageRList: lists,
        });
    }
    if (st === 'msm') for (const m of MSM_VARIANTS) rows.push({ ...base, study: st, setting: m.label, reduce: m.reduce });
    if (st === 'rscin') for (const w of rscinWindows(rscinStudy)) rows.push({ ...base, study: st, setting: w.label, kList: w.k });
    if (st === 'divide')
      for (const d of DIVIDE_COUNTS) rows.push({ ...base, study: st, setting: `${d} subset${d > 1 ? 's' : ''}`, divide: d });
    if (st === 'shots') {
      for (const k of shotCounts) {
        rows.push({ ...base, study: st, setting: `${k}-shot MuSc`, shots: k });
        if (k > 0) rows.push({ ...base, study: st, setting: `${k}-shot MuSc+`, shots: k, mode: 'musc-plus' });
      }
    }
  }
  return rows;
}

/** Parses --study: one of r, msm, rscin, divide, shots, all, or a comma list. */
export function parseStudies(s: string): StudyName[] {
  const parts = s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new Error('expected a study name');
  const out: StudyName[] = [];
  for (const p of parts) {
    if (p === 'all') out.push(...STUDIES);
    else if ((STUDIES as readonly string[]).includes(p)) out.push(p as StudyName);
    else throw new Error(`unknown study '${p}' (r, msm, rscin, divide, shots, all)`);
  }
  return [...new Set(out)];
}
