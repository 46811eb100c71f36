import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AuditConfig } from '../config/config.ts';
import type { Checkpoint, CheckpointSigner } from './audit-store.ts';
import { checkpointMessage } from './chain.ts';

export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;
}

/** `…/audit-signing-key.pem` → `…/audit-signing-key.pub.pem` */
export const publicKeyPath = (privatePath: string) => privatePath.replace(/\.pem$/, '.pub.pem');

/**
 * The Ed25519 key that signs audit heads, its own key (not the data keys): created on first
 * start at HEARTH_AUDIT_SIGNING_KEY (default <data dir>/keys) with owner-only permissions;
 * refused when the permissions are open. Keep it off the volume whose data it protects, and a
 * copy of the public key elsewhere: whoever can rewrite the data and the key together can
 * re-sign a forged chain.
 */
export function loadSigningKey(privatePath: string): SigningKey {
  const publicPath = publicKeyPath(privatePath);
  if (!existsSync(privatePath)) {
    mkdirSync(dirname(privatePath), { recursive: true, mode: 0o700 });
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    chmodSync(privatePath, 0o600);
    writeFileSync(publicPath, publicKey.export({ type: 'spki', format: 'pem' }));
  }
  const mode = statSync(privatePath).mode & 0o777;
  if (mode & 0o077) {
    throw new Error(`${privatePath} is readable by others (mode ${mode.toString(8)}); chmod 600 it`);
  }
  const privateKey = createPrivateKey(readFileSync(privatePath));
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** The public key alone, for `hearth audit verify`. */
export function loadPublicKey(path: string): KeyObject {
  return createPublicKey(readFileSync(path));
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/**
 * Signs the head of every committed batch (Ed25519, tens of microseconds: cheap at batch
 * granularity), so that no acknowledged event lies beyond the last signed head.
 */
export function checkpointSigner(key: SigningKey, clock: () => Date): CheckpointSigner {
  return (head, last) => {
    // Nothing new to sign; and never over a signed head beyond this one (a cut chain is not re-signed).
    if (last && last.seq >= head.seq) return undefined;
    const signedAt = clock().toISOString();
    const signature = sign(null, checkpointMessage(head.seq, head.hash, signedAt), key.privateKey).toString('base64');
    const cp: Checkpoint = { seq: head.seq, hash: head.hash, signedAt, keyId: key.keyId, signature };
    return cp;
  };
}

/** The signer of the audit chain's heads: the configured signing key (created on first use). */
export function auditSigner(audit: AuditConfig, clock: () => Date): CheckpointSigner {
  return checkpointSigner(loadSigningKey(audit.signingKey), clock);
}
