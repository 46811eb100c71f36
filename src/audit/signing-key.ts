import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Checkpoint, CheckpointSigner } from './audit-store.ts';
import { checkpointMessage } from './chain.ts';

export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;
}

/**
 * The Ed25519 key that signs audit checkpoints, its own key (not the data keys): created on first
 * start under <data dir>/keys with owner-only permissions; refused when the permissions are open.
 * Keep a copy of the public key (audit-signing-key.pub.pem) elsewhere: verification against a
 * public key an attacker could also replace proves less.
 */
export function loadSigningKey(dataDir: string): SigningKey {
  const dir = join(dataDir, 'keys');
  const privatePath = join(dir, 'audit-signing-key.pem');
  const publicPath = join(dir, 'audit-signing-key.pub.pem');
  if (!existsSync(privatePath)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
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

/** Signs a checkpoint every `every` events, and whenever `maxAgeMs` passed since the last one. */
export function checkpointSigner(key: SigningKey, every: number, maxAgeMs: number, clock: () => Date): CheckpointSigner {
  return (head, last) => {
    const now = clock();
    const due = !last || head.seq - last.seq >= every || now.getTime() - Date.parse(last.signedAt) >= maxAgeMs;
    if (!due || (last && last.seq === head.seq)) return undefined;
    const signedAt = now.toISOString();
    const signature = sign(null, checkpointMessage(head.seq, head.hash, signedAt), key.privateKey).toString('base64');
    const cp: Checkpoint = { seq: head.seq, hash: head.hash, signedAt, keyId: key.keyId, signature };
    return cp;
  };
}
