/**
 * A bank on disk: a directory NAME.bank holding
 *
 *   manifest.json          settings, software version, images (name, sha256, size), skipped inputs,
 *                          the sha256 and size of every other file, and its own checksum
 *   features.safetensors   stage_<l>: F16 [N, h, w, C] patch features per stage; tokens: F32 [N, D]
 *   calibration.json       leave-one-out scores (calibration.ts)
 *
 * Written into a temporary directory next to the target (`.musc-tmp-NAME.bank.<pid>.<random>`,
 * every file fsynced) and renamed into place, so a reader never sees half a bank; an existing
 * bank is replaced only with `force` (renamed away first, deleted after). Leftover temporary
 * directories of killed builds are removed by the next build of the same name.
 * openBank verifies the manifest checksum, every file's sha256 and every shape before use.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { sharedFeatures } from '../compute/worker.js';
import { planPasses } from '../core/plan.js';
import { checkNormExponent } from '../core/lnamd.js';
import type { ImageTokens, StageFeatures } from '../core/types.js';
import { tempPathFor } from '../io/atomic.js';
import { encodeSafetensors, SafetensorsFile, type TensorToWrite } from '../io/safetensors.js';
import { temporaryOwner } from '../outputs/temp-files.js';
import type { Calibration } from './calibration.js';
import { sha256 } from './extract.js';
import { BANK_FORMAT, BANK_FORMAT_VERSIONS, type Bank, type BankFile, type BankManifest, bankFormatVersion } from './types.js';
import { projectKey } from '../core/score.js';

export const MANIFEST = 'manifest.json';
export const FEATURES = 'features.safetensors';
export const CALIBRATION = 'calibration.json';

/** A bank that cannot be used (missing, corrupt, other format): names the bank and the problem. */
export class BankError extends Error {
  constructor(
    readonly bank: string,
    message: string,
  ) {
    super(`bank ${bank}: ${message}`);
    this.name = 'BankError';
  }
}

/** sha256 of the manifest's JSON without its checksum field. */
export function manifestChecksum(m: Omit<BankManifest, 'checksum'> & { checksum?: string }): string {
  const { checksum: _drop, ...rest } = m;
  return sha256(Buffer.from(JSON.stringify(rest), 'utf8'));
}

async function writeSynced(path: string, data: Uint8Array | string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Removes temporary bank directories of dead processes for this target. */
async function removeStaleBankTemps(out: string): Promise<void> {
  const parent = dirname(out),
    prefix = basename(tempPathFor(out)).replace(/\.\d+\.[0-9a-f]{8}$/, '');
  const ents = await readdir(parent, { withFileTypes: true }).catch(() => []);
  for (const e of ents) {
    if (!e.isDirectory() || !e.name.startsWith(`${prefix}.`)) continue;
    const pid = temporaryOwner(e.name);
    if (pid === null || pid === process.pid) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) await rm(join(parent, e.name), { recursive: true, force: true });
  }
}

export interface BankContents {
  manifest: Omit<BankManifest, 'files' | 'checksum'>;
  stages: StageFeatures<Uint16Array>[];
  tokens: ImageTokens;
  /** with scoring.project: every pass's basis [K, C] by projectKey */
  bases?: Record<string, Float32Array>;
  /** with scoring.density_exponent: every normalised pass's densities [n, P] by projectKey */
  densities?: Record<string, Float64Array>;
  calibration: Calibration;
}

/** The tensor name of a projection basis in features.safetensors. */
const basisTensor = (key: string): string => `basis_${key}`;
/** The tensor name of a pass's densities in features.safetensors. */
const densityTensor = (key: string): string => `density_${key}`;

/** Writes a bank directory atomically (see the module comment); returns the final manifest. */
export async function writeBank(out: string, c: BankContents, opts: { force?: boolean } = {}): Promise<BankManifest> {
  if ((await exists(out)) && !opts.force) throw new BankError(out, 'already exists (give --force to replace it)');
  await mkdir(dirname(out), { recursive: true });
  await removeStaleBankTemps(out);
  const tmp = tempPathFor(out);
  await mkdir(tmp);
  try {
    const tensors: Record<string, TensorToWrite> = { tokens: { dtype: 'F32', shape: [c.tokens.n, c.tokens.d], data: c.tokens.data } };
    c.stages.forEach((s, l) => (tensors[`stage_${l}`] = { dtype: 'F16', shape: [s.n, s.h, s.w, s.c], data: s.data }));
    const K = c.manifest.scoring.project;
    for (const [key, b] of Object.entries(c.bases ?? {})) tensors[basisTensor(key)] = { dtype: 'F32', shape: [K!, b.length / K!], data: b };
    const n = c.tokens.n;
    for (const [key, rho] of Object.entries(c.densities ?? {}))
      tensors[densityTensor(key)] = { dtype: 'F64', shape: [n, rho.length / n], data: rho };
    const files: BankFile[] = [];
    for (const [name, data] of [
      [FEATURES, encodeSafetensors(tensors, { format: BANK_FORMAT })],
      [CALIBRATION, JSON.stringify(c.calibration, null, 1) + '\n'],
    ] as const) {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      await writeSynced(join(tmp, name), bytes);
      files.push({ name, sha256: sha256(bytes), bytes: bytes.length });
    }
    const body = { ...c.manifest, files };
    const manifest: BankManifest = { ...body, checksum: manifestChecksum(body) };
    await writeSynced(join(tmp, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
    if (await exists(out)) {
      const old = tempPathFor(out);
      await rename(out, old);
      await rename(tmp, out);
      await rm(old, { recursive: true, force: true });
    } else await rename(tmp, out);
    return manifest;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

function parseJson<T>(bank: string, file: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new BankError(bank, `${file} is not valid JSON (corrupt?): ${(e as Error).message}`);
  }
}

/** Reads and checks manifest.json (format, version, checksum). */
export async function readManifest(path: string): Promise<BankManifest> {
  const st = await stat(path).catch(() => null);
  if (!st) throw new BankError(path, 'not found');
  if (!st.isDirectory()) throw new BankError(path, 'is not a bank directory (a bank is a folder NAME.bank made by `musc bank build`)');
  const text = await readFile(join(path, MANIFEST), 'utf8').catch(() => null);
  if (text === null) throw new BankError(path, `${MANIFEST} is missing: not a bank, or an incomplete copy`);
  const m = parseJson<BankManifest>(path, MANIFEST, text);
  if (m.format !== BANK_FORMAT) throw new BankError(path, `${MANIFEST} is not a musc bank manifest (format '${String(m.format)}')`);
  if (!BANK_FORMAT_VERSIONS.includes(m.format_version))
    throw new BankError(path, `bank format version ${m.format_version}; this musc reads versions ${BANK_FORMAT_VERSIONS.join(', ')}`);
  if (m.checksum !== manifestChecksum(m))
    throw new BankError(path, `${MANIFEST} is corrupt or was edited (its checksum does not match its content)`);
  return m;
}

/** Opens a bank and verifies everything (checksums, shapes); throws BankError naming the problem. */
export async function readBank(path: string): Promise<Bank> {
  const manifest = await readManifest(path);
  const bytes = new Map<string, Buffer>();
  for (const f of manifest.files) {
    const b = await readFile(join(path, f.name)).catch(() => null);
    if (!b) throw new BankError(path, `${f.name} is missing`);
    if (b.length !== f.bytes)
      throw new BankError(path, `${f.name} has ${b.length} bytes, the manifest says ${f.bytes} (truncated or replaced?)`);
    if (sha256(b) !== f.sha256)
      throw new BankError(
        path,
        `${f.name} is corrupt (sha256 ${sha256(b).slice(0, 12)}..., the manifest says ${f.sha256.slice(0, 12)}...)`,
      );
    bytes.set(f.name, b);
  }
  if (!bytes.has(FEATURES) || !bytes.has(CALIBRATION))
    throw new BankError(path, `the manifest does not list ${FEATURES} and ${CALIBRATION}`);
  const grid = manifest.scoring.score_grid;
  if (grid !== undefined && !(Number.isInteger(grid) && grid >= 1 && grid <= 512))
    throw new BankError(path, `${MANIFEST}: scoring.score_grid must be an integer 1..512, got ${JSON.stringify(grid)}`);
  checkDegrees(path, manifest);
  const { stages, tokens, bases, densities } = readFeatures(path, manifest);
  const calibration = parseJson<Bank['calibration']>(path, CALIBRATION, bytes.get(CALIBRATION)!.toString('utf8'));
  const n = manifest.images.length;
  for (const k of ['scores', 'image_scores', 'map_medians'] as const) {
    if (!Array.isArray(calibration[k]) || calibration[k].length !== n)
      throw new BankError(path, `${CALIBRATION}: '${k}' must hold ${n} values`);
  }
  const mx = calibration.map_maxima;
  if (mx !== undefined && (!Array.isArray(mx) || mx.length !== n))
    throw new BankError(path, `${CALIBRATION}: 'map_maxima' must hold ${n} values`);
  return { path, manifest, stages, tokens, ...(bases ? { bases } : {}), ...(densities ? { densities } : {}), calibration };
}

/**
 * The manifest's scoring settings: the format version they need, stage_r_list (when present) one
 * list per stage, each within r_list; project (when present) 2..the first stage's channels.
 */
function checkDegrees(path: string, m: BankManifest): void {
  const { r_list, stage_r_list, project, norm_exponent, density_exponent } = m.scoring;
  if (!Array.isArray(r_list) || r_list.length === 0) throw new BankError(path, `${MANIFEST}: scoring.r_list must be a non-empty list`);
  const need = bankFormatVersion(m.scoring);
  if (m.format_version !== need)
    throw new BankError(
      path,
      `${MANIFEST}: its scoring settings (stage_r_list ${stage_r_list ? 'present' : 'absent'}, project ${project !== undefined ? 'present' : 'absent'}, norm_exponent ${norm_exponent !== undefined ? 'present' : 'absent'}, density_exponent ${density_exponent !== undefined ? 'present' : 'absent'}) are those of bank format version ${need}, the manifest says ${m.format_version}`,
    );
  const C = m.features.stages[0]?.c ?? 0;
  if (project !== undefined && !(Number.isInteger(project) && project >= 2 && project <= C))
    throw new BankError(
      path,
      `${MANIFEST}: scoring.project must be an integer 2..${C} (the first stage's channels), got ${JSON.stringify(project)}`,
    );
  if (norm_exponent !== undefined) {
    try {
      if (typeof norm_exponent !== 'number' || norm_exponent === 1)
        throw new Error(`must be a number in [0, 1), got ${JSON.stringify(norm_exponent)}`);
      checkNormExponent(norm_exponent, m.scoring.msm_precision, 'scoring.norm_exponent');
    } catch (e) {
      throw new BankError(path, `${MANIFEST}: ${(e as Error).message.replace(/^scoring\.norm_exponent: /, '')}`);
    }
  }
  if (density_exponent !== undefined) checkDensity(path, m);
  else if (m.scoring.density_scope !== undefined) throw new BankError(path, `${MANIFEST}: scoring.density_scope without density_exponent`);
  if (stage_r_list === undefined) return;
  try {
    if (!Array.isArray(stage_r_list) || !stage_r_list.every(Array.isArray)) throw new Error('must be a list of lists');
    planPasses({ rList: r_list, stageRList: stage_r_list }, m.features.stages.length);
  } catch (e) {
    throw new BankError(path, `${MANIFEST}: scoring.stage_r_list ${(e as Error).message}`);
  }
}

/** scoring.density_exponent: one positive exponent, or one per stage (at least 0, one positive); 'fast' MSM; not projected. */
function checkDensity(path: string, m: BankManifest): void {
  const A = m.scoring.density_exponent;
  const L = m.features.stages.length;
  const ok = (a: unknown): boolean => typeof a === 'number' && Number.isFinite(a) && a >= 0 && a <= 4;
  const valid = Array.isArray(A) ? A.length === L && A.every(ok) && A.some((a) => a > 0) : ok(A) && (A as number) > 0;
  if (!valid)
    throw new BankError(
      path,
      `${MANIFEST}: scoring.density_exponent must be a number in (0, 4] or ${L} numbers in [0, 4] (one per stage, one positive), got ${JSON.stringify(A)}`,
    );
  if (m.scoring.msm_precision !== 'fast' || m.scoring.project !== undefined)
    throw new BankError(path, `${MANIFEST}: scoring.density_exponent needs msm_precision 'fast' and no project`);
  const scope = m.scoring.density_scope;
  if (scope !== undefined && scope !== 'image')
    throw new BankError(path, `${MANIFEST}: scoring.density_scope must be 'image' (absent: every score), got ${JSON.stringify(scope)}`);
}

/** The (stage, r) passes of a bank's scoring settings (core/plan.ts planPasses). */
function bankPasses(m: Pick<BankManifest, 'scoring' | 'features'>) {
  return planPasses(
    { rList: m.scoring.r_list, ...(m.scoring.stage_r_list ? { stageRList: m.scoring.stage_r_list } : {}) },
    m.features.stages.length,
  );
}

/** The passes whose tables a bank's density_exponent normalises: their projectKey. */
function densityKeys(m: Pick<BankManifest, 'scoring' | 'features'>): string[] {
  const A = m.scoring.density_exponent;
  if (A === undefined) return [];
  const passes = bankPasses(m);
  return passes.filter(({ l }) => (typeof A === 'number' ? A : A[l]!) > 0).map(({ l, ri }) => projectKey(l, m.scoring.r_list[ri]!));
}

/** The densities [n, P] of every normalised pass of a bank with scoring.density_exponent, shapes and values checked. */
function readDensities(path: string, m: BankManifest, f: SafetensorsFile): Record<string, Float64Array> {
  const n = m.images.length,
    s0 = m.features.stages[0]!;
  const P = m.scoring.score_grid !== undefined ? m.scoring.score_grid ** 2 : s0.h * s0.w;
  const out: Record<string, Float64Array> = {};
  for (const key of densityKeys(m)) {
    const name = densityTensor(key);
    if (!f.has(name))
      throw new BankError(
        path,
        `${FEATURES} has no ${name} (a density-normalised bank holds the densities of each normalised stage and r)`,
      );
    const t = f.float64(name);
    if (t.shape.join() !== [n, P].join()) throw new BankError(path, `${name} has shape [${t.shape}], expected [${n},${P}]`);
    if (!t.data.every((v) => Number.isFinite(v) && v >= 0))
      throw new BankError(path, `${name} holds values that are not finite distances (NaN, infinite or negative)`);
    out[key] = t.data;
  }
  return out;
}

/** The projection basis [K, C] of every (stage, r) pass of a bank with scoring.project, shapes checked. */
function readBases(path: string, m: BankManifest, f: SafetensorsFile): Record<string, Float32Array> {
  const K = m.scoring.project!,
    C = m.features.stages[0]!.c;
  const passes = bankPasses(m);
  const bases: Record<string, Float32Array> = {};
  for (const { l, ri } of passes) {
    const key = projectKey(l, m.scoring.r_list[ri]!);
    const name = basisTensor(key);
    if (!f.has(name)) throw new BankError(path, `${FEATURES} has no ${name} (a projected bank holds one basis per stage and r)`);
    const t = f.float32(name);
    if (t.shape.join() !== [K, C].join()) throw new BankError(path, `${name} has shape [${t.shape}], expected [${K},${C}]`);
    bases[key] = t.data;
  }
  return bases;
}

function readFeatures(
  path: string,
  m: BankManifest,
): {
  stages: StageFeatures<Uint16Array>[];
  tokens: ImageTokens;
  bases?: Record<string, Float32Array>;
  densities?: Record<string, Float64Array>;
} {
  const n = m.images.length;
  const f = SafetensorsFile.open(join(path, FEATURES));
  try {
    const stages = m.features.stages.map((d, l) => {
      const t = f.float16(`stage_${l}`);
      const want = [n, d.h, d.w, d.c];
      if (t.shape.join() !== want.join()) throw new BankError(path, `stage_${l} has shape [${t.shape}], the manifest says [${want}]`);
      const data = sharedFeatures('float16', t.data.length) as Uint16Array;
      data.set(t.data);
      return { n, h: d.h, w: d.w, c: d.c, data };
    });
    const tk = f.float32('tokens');
    if (tk.shape.join() !== [n, m.features.token_dim].join())
      throw new BankError(path, `tokens have shape [${tk.shape}], expected [${n},${m.features.token_dim}]`);
    const bases = m.scoring.project !== undefined ? readBases(path, m, f) : undefined;
    const densities = m.scoring.density_exponent !== undefined ? readDensities(path, m, f) : undefined;
    return {
      stages,
      tokens: { n, d: m.features.token_dim, data: tk.data },
      ...(bases ? { bases } : {}),
      ...(densities ? { densities } : {}),
    };
  } finally {
    f.close();
  }
}
