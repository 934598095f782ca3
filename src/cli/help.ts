/** Help texts of musc commands (examples after the options) and the demo's closing lines. */
import { join } from 'node:path';

/** '(required) ' before the description of a required option (commander does not mark them). */
export const REQUIRED = '(required) ';

export const RUN_HELP = `
Examples:
  musc run --data ./mvtec_anomaly_detection --out results              every category
  musc run --data ./mvtec_anomaly_detection --category bottle --out results
  musc run --data ./my-images --out results --decision                 a plain folder; OK/NG column
  musc serve results                                                   open the report in a browser`;

export const DEMO_HELP = `
Examples:
  musc demo                       into a new temporary folder
  musc demo --out demo-run        data in demo-run/data, results in demo-run/results`;

export const REPORT_HELP = `
Examples:
  musc report results             writes results/report.html (open it from file://)
  musc report results --norm image --title "Line 7, week 12"`;

export const SERVE_HELP = `
Examples:
  musc serve results              http://127.0.0.1:8765/
  musc serve results --port 0     any free port (printed)`;

export const TOKENS_HELP = `
Example:
  musc tokens --data ./mvtec_anomaly_detection --category bottle --out bottle.tokens.safetensors`;

export const RSCIN_HELP = `
Example:
  musc rscin --scores other-method/bottle.csv --features bottle.tokens.safetensors --out rescored.csv`;

export const ABLATE_HELP = `
Examples:
  musc ablate --data ./mvtec_anomaly_detection --category bottle --quick
  musc ablate --data ./mvtec_anomaly_detection --category bottle --study r,rscin --out ablate-bottle`;

export const MODELS_HELP = `
Examples:
  musc models list
  musc models pull dinov2-vitb14`;

/** What the demo prints at the end: how to open its report and what to try next. */
export function nextSteps(results: string): string {
  return [
    '',
    'Next:',
    `  open the report:   musc serve ${results}   (or open ${join(results, 'report.html')} in a browser)`,
    '  your own images:   musc run --data DIR --out OUT   (DIR: a folder of images, or MVTec AD / VisA / BTAD / MPDD layout)',
    '  new images later:  musc bank build --data GOOD_DIR --out my.bank',
    '                     musc predict --bank my.bank NEW_DIR --out predictions',
    '',
  ].join('\n');
}
