/**
 * A node:test reporter for `npm test`: a dot per passing test, every skip with its reason, every
 * failure in full (name, file, error), and one closing line `N passed, N failed, N skipped` with
 * the runner's own counts, instead of a thousand lines of TAP.
 */
import { inspect } from 'node:util';

interface TestEvent {
  type: string;
  data: {
    name?: string;
    nesting?: number;
    file?: string;
    message?: string;
    skip?: boolean | string;
    todo?: boolean | string;
    details?: { type?: string; duration_ms?: number; error?: unknown };
  };
}

/** The runner's closing diagnostics: "tests 224", "pass 224", ... */
const COUNT = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/;

export default async function* summaryReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const counts = new Map<string, number>();
  let dots = 0;
  for await (const ev of source) {
    const d = ev.data;
    if (ev.type === 'test:pass' && d.details?.type !== 'suite' && (d.skip || d.todo)) {
      yield `\nskipped: ${d.name}${typeof d.skip === 'string' ? ` (${d.skip})` : ''}\n`;
    } else if (ev.type === 'test:pass' && d.details?.type !== 'suite') {
      dots++;
      yield dots % 100 === 0 ? '.\n' : '.';
    } else if (ev.type === 'test:fail' && d.details?.type !== 'suite') {
      const err = inspect(d.details?.error, { depth: 6, colors: false });
      yield `\n\nFAILED: ${d.name} (${d.file ?? 'unknown file'})\n${err}\n\n`;
    } else if (ev.type === 'test:diagnostic' && d.message) {
      const m = COUNT.exec(d.message);
      if (m && d.nesting === 0) counts.set(m[1]!, Number(m[2]));
      else if (!m) yield `\n${d.message}\n`;
    }
  }
  const n = (k: string): number => counts.get(k) ?? 0;
  const secs = (n('duration_ms') / 1000).toFixed(0);
  yield `\n${n('tests')} tests in ${secs} s\n` +
    `${n('pass')} passed, ${n('fail') + n('cancelled')} failed, ${n('skipped') + n('todo')} skipped\n`;
}
