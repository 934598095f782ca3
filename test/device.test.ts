/** --device cuda on a machine without the CUDA build fails fast, before any work, with what to do. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ort, checkDevice, DeviceError } from '../src/compute/session.js';
import { repoRoot } from './helpers/paths.js';

async function cudaWorks(): Promise<boolean> {
  try {
    await checkDevice('cuda');
    return true;
  } catch (e) {
    assert.ok(e instanceof DeviceError);
    return false;
  }
}

test('musc run --device cuda without the CUDA build: exit 2 (configuration), a message naming the install flag, no output', async (t) => {
  if (await cudaWorks()) return t.skip('this machine has a working CUDA build of onnxruntime-node');
  assert.ok(ort.listSupportedBackends().some((b) => b.name === 'cpu'));
  const out = join(mkdtempSync(join(tmpdir(), 'musc-dev-')), 'out');
  try {
    const r = spawnSync(
      process.execPath,
      [resolve(repoRoot(), 'dist/src/cli/main.js'), 'run', '--data', join(out, '..', 'data'), '--out', out, '--device', 'cuda'],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--device cuda is not available/);
    assert.match(r.stderr, /onnxruntime-node-install=cuda12/);
    assert.doesNotMatch(r.stderr, /\n\s+at /); // no stack trace
    assert.equal(existsSync(out), false);
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
});
