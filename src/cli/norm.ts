/**
 * The heatmap colour scale flag, one spelling for musc run and musc report:
 *   --norm category|image   (category: one fixed scale per category; image: each map's own min-max)
 * The old `musc run --vis-norm single|whole` still works, hidden, with a one-line deprecation note.
 */
import { Option } from 'commander';
import { deprecationNote, OLD_VIS_NORM, VIS_NORMS, type VisNorm } from '../config.js';
import { wrapArg } from './args.js';

/** --norm category|image; with a default for commands without settings files (musc report). */
export function normOption(withDefault = false): Option {
  const what = 'heatmap colour scale: category = one fixed scale for all images of a category, image = each image its own min-max';
  const o = new Option('--norm <scale>', withDefault ? what : `${what} (default: category)`).choices([...VIS_NORMS]);
  return withDefault ? o.default('category') : o;
}

/** --vis-norm single|whole: hidden, deprecated (single = image, whole = category). */
export function oldVisNormOption(): Option {
  return new Option('--vis-norm <mode>', 'deprecated: use --norm').hideHelp().argParser(
    wrapArg((v): VisNorm => {
      const n = OLD_VIS_NORM[v];
      if (!n) throw new Error(`Allowed choices are single, whole (deprecated; use --norm ${VIS_NORMS.join('|')})`);
      deprecationNote(`--vis-norm ${v} is deprecated; use --norm ${n}`);
      return n;
    }),
  );
}
