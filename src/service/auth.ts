/**
 * Bearer-token check: both sides are hashed (SHA-256) first so that timingSafeEqual compares
 * equal-length buffers and the time taken says nothing about the token, not even its length.
 */
import { timingSafeEqual } from 'node:crypto';
import { sha256Hex } from '../io/sha256.js';

const digest = (s: string): Buffer => Buffer.from(sha256Hex(s), 'hex');

export class TokenCheck {
  private readonly expected: Buffer;
  constructor(token: string) {
    this.expected = digest(token);
  }
  /** true when the Authorization header is 'Bearer <the token>' */
  accepts(authorization: string | undefined): boolean {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization ?? '');
    // always hash and compare, also when the header is missing or malformed
    const ok = timingSafeEqual(digest(m ? m[1]! : ''), this.expected);
    return ok && m !== null;
  }
}
